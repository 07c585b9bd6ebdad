"""Response shapes of the proxy-logs API; used to render and to document each endpoint."""

import json

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from proxylogs.ingest.parse import status_text
from vpnmonitor.api.fields import MaskedClientField, MaskedIPField
from vpnmonitor.models import AuditEvent
from vpnmonitor.privacy import mask_addresses_in, should_mask
from vpnmonitor.timeseries import format_timestamp

Int = serializers.IntegerField
Str = serializers.CharField


def envelope(name, data, **extra):
    """The documented success envelope {"status": "success", "data": ..., **extra}."""
    return inline_serializer(name=name, fields={"status": Str(default="success"), "data": data, **extra})


def message_envelope(name, **extra):
    return inline_serializer(name=name, fields={"status": Str(default="success"), "message": Str(), **extra})


class LogEntrySerializer(serializers.Serializer):
    id = Int()
    timestamp = serializers.SerializerMethodField(help_text="UTC, 'YYYY-MM-DD HH:MM:SS'")
    time = serializers.SerializerMethodField(help_text="ISO 8601 with milliseconds, UTC")
    client_ip = MaskedClientField(
        source="client", help_text="The client's address, or its host name when Squid logs names (log_fqdn); in GDPR "
        "mode an address is masked to its /24 (IPv6 /48), a name to a stable keyed hash (host-…)")
    method = Str()
    destination = Str(allow_null=True, help_text="host, host:port; CONNECT host:port")
    status = serializers.SerializerMethodField(help_text="e.g. '200 Connection established', '403 Forbidden'")
    bytes = Int()
    http_status = Int()
    result_code = Str(help_text="Squid result code, e.g. TCP_MISS, TCP_DENIED")
    blocked = serializers.BooleanField(help_text="HTTP 403 or a DENIED/BLOCKED result (a 407 is not)")
    url = Str()
    user = Str(allow_null=True)
    elapsed_ms = Int(allow_null=True)
    hierarchy = Str()
    peer = Str(allow_null=True)
    mime_type = Str(allow_null=True)
    user_agent = Str(allow_null=True)
    referer = Str(allow_null=True)
    waf_category = Str(allow_null=True)

    def get_timestamp(self, entry) -> str:
        return format_timestamp(entry.timestamp)

    def get_time(self, entry) -> str:
        return entry.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def get_status(self, entry) -> str:
        return status_text(entry.http_status, entry.method)


class LogStatsSerializer(serializers.Serializer):
    total_count = Int()
    blocked_count = Int(help_text="HTTP 403 or a DENIED/BLOCKED result code; 407 challenges are not blocks")
    ip_blocks_count = Int(help_text="Blocked requests to raw IPv4/IPv6 destinations, CONNECT included")
    last_import = Str(allow_null=True, help_text="When an import that read lines last succeeded (UTC)")


class TimelinePointSerializer(serializers.Serializer):
    time = Str(help_text="Start of the hour, UTC")
    total = Int()
    blocked = Int()


class ControlSerializer(serializers.Serializer):
    name = Str()
    label = Str()
    weight = Int()
    enabled = serializers.BooleanField(help_text="Claimed by the security profile")
    effective = serializers.BooleanField(help_text="Claimed and not contradicted by the logs")


class SecurityScoreSerializer(serializers.Serializer):
    score = Int(min_value=0, max_value=100)
    max_score = Int()
    recommendations = serializers.ListField(child=Str())
    controls = ControlSerializer(many=True)


class ClientSerializer(serializers.Serializer):
    client_ip = Str(help_text="Masked network in GDPR mode; clients of one network are then one row")
    requests = Int()
    bytes = Int()
    blocked = Int()
    last_seen = Str(allow_null=True)


class DashboardClientSerializer(ClientSerializer):
    ip = Str(help_text="The same as client_ip")
    count = Int(help_text="The same as requests")


class HostSerializer(serializers.Serializer):
    domain = Str()
    requests = Int()
    bytes = Int()
    blocked = Int()
    clients = Int()


class BlockSerializer(serializers.Serializer):
    timestamp = Str(help_text="UTC, 'YYYY-MM-DD HH:MM:SS'")
    source_ip = Str(help_text="Masked in GDPR mode")
    client_ip = Str(help_text="The same as source_ip")
    method = Str()
    destination = Str(allow_null=True)
    status = Str(help_text="Status as the log shows it, e.g. '403 Forbidden'")
    http_status = Int()
    result_code = Str()


class WindowTotalsSerializer(serializers.Serializer):
    requests = Int()
    blocked = Int()
    allowed = Int()
    bytes = Int()
    unique_clients = Int()
    unique_domains = Int()


class TopBlockedSerializer(serializers.Serializer):
    dest = Str(help_text="Destination as logged (host, host:port)")
    count = Int()


class CategoryCountSerializer(serializers.Serializer):
    category = Str()
    count = Int()


class DashboardSerializer(serializers.Serializer):
    total_requests = Int(help_text="Every stored entry")
    blocked_requests = Int()
    today_requests = Int(help_text="Since 00:00 UTC")
    today_blocked = Int()
    ip_blacklist_count = Int(help_text="From the security profile")
    domain_blacklist_count = Int(help_text="From the security profile")
    top_blocked = TopBlockedSerializer(many=True, help_text="Most refused destinations in the window")
    threat_categories = CategoryCountSerializer(
        many=True, help_text="Refused requests in the window: WAF category label, 'Direct IP' or 'Policy'")
    waf = serializers.JSONField(allow_null=True, help_text="Inline-WAF figures; null (not in access logs)")
    hours = Int()
    stats = LogStatsSerializer()
    window = WindowTotalsSerializer()
    timeline = TimelinePointSerializer(many=True)
    top_clients = DashboardClientSerializer(many=True)
    top_domains = HostSerializer(many=True)
    recent_blocks = BlockSerializer(many=True)
    security_score = Int()


class CountSerializer(serializers.Serializer):
    count = Int()
    bytes = Int()


class StatusCountSerializer(CountSerializer):
    status = Int()


class MethodCountSerializer(CountSerializer):
    method = Str()


class ResultCodeCountSerializer(CountSerializer):
    result_code = Str()


class HourlyTrafficSerializer(serializers.Serializer):
    time = Str()
    requests = Int()
    blocked = Int()
    bytes = Int()


class TrafficStatisticsSerializer(serializers.Serializer):
    period = Str(help_text="hour (5-minute buckets), day (hours), week or month (days)")
    labels = serializers.ListField(child=Str(), help_text="Bucket starts, UTC: 'YYYY-MM-DD HH:MM', "
                                                         "'YYYY-MM-DD HH' or 'YYYY-MM-DD'")
    inbound = serializers.ListField(child=Int(), help_text="Requests received from clients per bucket")
    outbound = serializers.ListField(child=Int(), help_text="Requests passed on to their destination per bucket")
    blocked = serializers.ListField(child=Int(), help_text="Requests refused per bucket")
    hours = Int(help_text="The period's span in hours, over which the totals below are counted")
    requests = Int()
    blocked_requests = Int()
    allowed = Int()
    bytes = Int()
    unique_clients = Int()
    unique_domains = Int()
    by_status = StatusCountSerializer(many=True)
    by_method = MethodCountSerializer(many=True)
    by_result_code = ResultCodeCountSerializer(many=True)
    hourly = HourlyTrafficSerializer(many=True)


class ClientStatisticsRowSerializer(ClientSerializer):
    ip_address = Str(help_text="The same as client_ip")
    status = Str(help_text="'Active': seen in the window")


class ClientsStatisticsSerializer(serializers.Serializer):
    hours = Int()
    total_clients = Int(help_text="Distinct client addresses in the window")
    unique_clients = Int(help_text="The same as total_clients")
    clients = ClientStatisticsRowSerializer(many=True)


class ClientDestinationSerializer(serializers.Serializer):
    destination = Str()
    requests = Int()
    blocked = Int()


class ClientRequestSerializer(serializers.Serializer):
    timestamp = Str(help_text="UTC, 'YYYY-MM-DD HH:MM:SS'")
    method = Str()
    destination = Str(allow_null=True)
    status = Str(help_text="e.g. '403 Forbidden'")
    http_status = Int()
    bytes = Int()


class ClientDetailsSerializer(serializers.Serializer):
    ip_address = Str(help_text="The masked network in GDPR mode, whose entries are then summed")
    hours = Int()
    total_requests = Int()
    blocked = Int()
    first_seen = Str(allow_null=True)
    last_seen = Str(allow_null=True)
    top_domains = ClientDestinationSerializer(many=True, help_text="Its 10 most requested destinations")
    recent = ClientRequestSerializer(many=True, help_text="Its 20 newest requests")


class DomainStatisticsRowSerializer(HostSerializer):
    domain_name = Str(help_text="The same as domain")
    status = serializers.ChoiceField(choices=["Allowed", "Blocked"],
                                     help_text="Blocked when a request to the host was refused in the window")


class ShadowItSerializer(serializers.Serializer):
    name = Str()
    domain = Str(help_text="The service's first catalogue domain")
    service = Str(help_text="The same as name")
    category = Str()
    risk = serializers.ChoiceField(choices=["low", "medium", "high"])
    requests = Int()
    bytes = Int()
    blocked = Int()
    clients = Int()
    users = Int()
    last_seen = Str(allow_null=True)


class AgentCountSerializer(serializers.Serializer):
    user_agent = Str()
    count = Int()


class MethodOnlySerializer(serializers.Serializer):
    name = Str()
    method = Str(help_text="The same as name")
    count = Int()


class NameCountSerializer(serializers.Serializer):
    name = Str()
    count = Int()


class UserAgentsSerializer(serializers.Serializer):
    hours = Int()
    requests = Int()
    requests_with_user_agent = Int(help_text="Only the combined log format carries the User-Agent")
    categories = CategoryCountSerializer(many=True,
                                         help_text="browser, mobile_app, bot, cli, os_update or other")
    top_user_agents = AgentCountSerializer(many=True)
    methods = MethodOnlySerializer(many=True)
    service_types = NameCountSerializer(many=True, help_text="The User-Agent categories as name/count")


class FileExtensionSerializer(serializers.Serializer):
    ext = Str(help_text="With its dot: '.pdf'")
    extension = Str(help_text="Without the dot")
    count = Int()
    bytes = Int()
    blocked = Int()


class FileExtensionsSerializer(serializers.Serializer):
    extensions = FileExtensionSerializer(many=True)
    categories = CategoryCountSerializer(many=True, help_text="Every file type in the window by category "
                                                              "(Web, Images, Documents, ... or Other)")


class TopDomainSerializer(serializers.Serializer):
    domain = Str(help_text="Registrable domain (Public Suffix List)")
    count = Int()
    bytes = Int()


class WafCategoryCountSerializer(serializers.Serializer):
    category = Str()
    label = Str()
    detected = Int()
    blocked = Int()


class WafStatsSerializer(serializers.Serializer):
    hours = Int()
    total_rules = Int()
    enabled_rules = Int()
    detected_requests = Int(help_text="Entries tagged by a WAF category")
    blocked_requests = Int(help_text="Tagged entries the proxy refused")
    allowed_detections = Int()
    entropy = serializers.FloatField(help_text="Shannon entropy (bits) of detections over categories")
    by_category = WafCategoryCountSerializer(many=True)


class WafCategorySerializer(serializers.Serializer):
    name = Str()
    label = Str()
    description = Str()
    enabled = serializers.BooleanField()
    detected = Int()
    blocked = Int()


class AuditEventSerializer(serializers.ModelSerializer):
    timestamp = serializers.SerializerMethodField(help_text="UTC, 'YYYY-MM-DD HH:MM:SS'")
    username = serializers.CharField(source="user", help_text="User name, API key or OAuth client")
    target = serializers.SerializerMethodField(help_text="What the action was on; addresses masked in GDPR mode")
    details = serializers.SerializerMethodField(help_text="The event's details as text: 'key=value, ...'")
    detail_fields = serializers.SerializerMethodField(help_text="The same details as an object")
    client_address = MaskedIPField()

    class Meta:
        model = AuditEvent
        fields = ["id", "timestamp", "username", "user", "action", "target", "details", "detail_fields",
                  "client_address"]

    def _masked(self, value):
        # Audited settings can hold personal addresses (a subscriber's /32 prefix, a client's address).
        return mask_addresses_in(value) if should_mask(self.context.get("request")) else value

    def get_timestamp(self, event) -> str:
        return format_timestamp(event.created_at)

    def get_target(self, event) -> str:
        return self._masked(event.target)

    def get_detail_fields(self, event) -> dict:
        return self._masked(event.details)

    def get_details(self, event) -> str:
        details = self._masked(event.details)
        if not details:
            return ""
        if not isinstance(details, dict):
            return json.dumps(details)
        return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                         for key, value in details.items())
