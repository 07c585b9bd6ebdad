"""Response shapes of the proxy-logs API; used to render and to document each endpoint."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from proxylogs.ingest.parse import status_text
from vpnmonitor.models import AuditEvent
from vpnmonitor.privacy import MaskedClientField, MaskedIPField
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


class HostSerializer(serializers.Serializer):
    domain = Str()
    requests = Int()
    bytes = Int()
    blocked = Int()
    clients = Int()


class BlockSerializer(serializers.Serializer):
    timestamp = Str()
    client_ip = Str()
    method = Str()
    destination = Str(allow_null=True)
    status = Int()
    result_code = Str()


class WindowTotalsSerializer(serializers.Serializer):
    requests = Int()
    blocked = Int()
    allowed = Int()
    bytes = Int()
    unique_clients = Int()
    unique_domains = Int()


class DashboardSerializer(serializers.Serializer):
    hours = Int()
    stats = LogStatsSerializer()
    window = WindowTotalsSerializer()
    timeline = TimelinePointSerializer(many=True)
    top_clients = ClientSerializer(many=True)
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


class TrafficStatisticsSerializer(WindowTotalsSerializer):
    hours = Int()
    by_status = StatusCountSerializer(many=True)
    by_method = MethodCountSerializer(many=True)
    by_result_code = ResultCodeCountSerializer(many=True)
    hourly = HourlyTrafficSerializer(many=True)


class ClientsStatisticsSerializer(serializers.Serializer):
    hours = Int()
    unique_clients = Int()
    clients = ClientSerializer(many=True)


class DomainsStatisticsSerializer(serializers.Serializer):
    hours = Int()
    unique_domains = Int()
    domains = HostSerializer(many=True)


class ShadowItSerializer(serializers.Serializer):
    service = Str()
    category = Str()
    risk = serializers.ChoiceField(choices=["low", "medium", "high"])
    requests = Int()
    bytes = Int()
    blocked = Int()
    clients = Int()
    users = Int()
    last_seen = Str(allow_null=True)


class CategoryCountSerializer(serializers.Serializer):
    category = Str()
    count = Int()


class AgentCountSerializer(serializers.Serializer):
    user_agent = Str()
    count = Int()


class MethodOnlySerializer(serializers.Serializer):
    method = Str()
    count = Int()


class UserAgentsSerializer(serializers.Serializer):
    hours = Int()
    requests = Int()
    requests_with_user_agent = Int(help_text="Only the combined log format carries the User-Agent")
    categories = CategoryCountSerializer(many=True,
                                         help_text="browser, mobile_app, bot, cli, os_update or other")
    top_user_agents = AgentCountSerializer(many=True)
    methods = MethodOnlySerializer(many=True)


class FileExtensionSerializer(serializers.Serializer):
    extension = Str()
    count = Int()
    bytes = Int()
    blocked = Int()


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
    timestamp = serializers.SerializerMethodField()
    client_address = MaskedIPField()

    class Meta:
        model = AuditEvent
        fields = ["id", "timestamp", "user", "action", "target", "details", "client_address"]

    def get_timestamp(self, event) -> str:
        return format_timestamp(event.created_at)
