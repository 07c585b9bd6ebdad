"""Views of the proxy-logs API: read parameters, call a selector or service, wrap the envelope."""


from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from proxylogs import selectors, services
from proxylogs.api import serializers as s
from proxylogs.filtersets import LogEntryFilterSet
from proxylogs.ingest.parse import ParseError, canonical_client
from proxylogs.security import security_score
from vpnmonitor.api import families, pagination
from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.api.params import choice_parameter, int_parameter
from vpnmonitor.api.principals import request_actor
from vpnmonitor.privacy import should_mask

TAG = ["proxy logs"]
HOURS = int_parameter("hours", 1, 720, 24, "Window: the last N hours")
WEEK = 168
HOURS_WEEK = int_parameter("hours", 1, 720, WEEK, "Window: the last N hours (default 7 days)")
LIMIT = int_parameter("limit", 1, 100, 10, "How many rows")
LIMIT_50 = int_parameter("limit", 1, 100, 50, "How many rows")
EXTENSIONS_LIMIT = int_parameter("limit", 1, 100, 30, "How many extensions")
DOMAINS_LIMIT = int_parameter("limit", 1, 200, 50, "How many domains")
PERIOD = choice_parameter("period", selectors.TRAFFIC_PERIODS, default="day",
                          description="hour: 12 five-minute buckets; day: 24 hours; week: 7 days; month: 30 days "
                                      "(UTC, ending with the current bucket)")


class ProxyLogsView(APIView):
    api_family = families.PROXY_LOGS

    def ok(self, serializer_class, data, many=False):
        return Response(self.api_family.ok(serializer_class(data, many=many).data))

    @property
    def masked(self):
        return should_mask(self.request)


@extend_schema(tags=TAG, summary="Log entries", description="Access-log entries, newest first by default.")
class LogListView(generics.ListAPIView):
    api_family = families.PROXY_LOGS
    serializer_class = s.LogEntrySerializer
    filterset_class = LogEntryFilterSet
    pagination_class = pagination.LimitOffsetPagination
    offset_description = (
        "Number of entries to skip. With sort=timestamp (the default), either order, a deep offset costs about "
        "what the first page does: the hourly counts turn it into a time boundary, and at most one hour's "
        "entries are stepped over. With sort=source_ip the database steps over each skipped entry in its index "
        "(and sorts the current day's entries, see sort), so the cost grows linearly with the offset: at 10M "
        "entries an offset of 1,000,000 takes about 2.7 s. Every other "
        "sort has no index (see sort): the database sorts the whole table for any page, and beyond a few "
        "thousand entries the offset + limit entries it keeps spill to disk, so at 10M entries an offset of "
        "1,000,000 takes 10 to 30 s."
    )

    def get_queryset(self):
        return selectors.log_entries()

    def page_with_total(self, queryset, start, stop):
        total = queryset.count()
        return selectors.log_page(queryset, start, stop - start), total


class LogStatsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Log statistics", responses=s.envelope("LogStatsResponse", s.LogStatsSerializer()))
    def get(self, request):
        return self.ok(s.LogStatsSerializer, selectors.log_stats())


class LogTimelineView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Hourly requests and blocks (zero-filled)",
                   parameters=[HOURS],
                   responses=s.envelope("TimelineResponse", s.TimelinePointSerializer(many=True)))
    def get(self, request):
        return self.ok(s.TimelinePointSerializer, selectors.timeline(HOURS.read(request)), many=True)


class ClearLogsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Delete every log entry (operators; audited)", request=None,
                   responses=s.message_envelope("ClearLogsResponse", deleted=s.Int()))
    def post(self, request):
        deleted = services.clear_logs(request_actor(request))
        return Response({"status": "success", "message": "All logs cleared", "deleted": deleted})


class ClearOldLogsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Delete entries past the retention policy (operators; audited)", request=None,
                   responses=s.message_envelope("ClearOldLogsResponse", deleted=s.Int(), retention_days=s.Int()))
    def post(self, request):
        deleted, days = services.clear_old_logs(request_actor(request))
        return Response({"status": "success", "message": "Cleared old logs", "deleted": deleted,
                         "retention_days": days})


class SecurityScoreView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Security score (0-100) and recommendations",
                   responses=s.envelope("SecurityScoreResponse", s.SecurityScoreSerializer()))
    def get(self, request):
        return self.ok(s.SecurityScoreSerializer, security_score())


class DashboardSummaryView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Dashboard data in one call", parameters=[HOURS],
                   responses=s.envelope("DashboardResponse", s.DashboardSerializer()))
    def get(self, request):
        return self.ok(s.DashboardSerializer, selectors.dashboard_summary(HOURS.read(request), masked=self.masked))


class TrafficStatisticsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Traffic chart and totals of a period", parameters=[PERIOD],
                   responses=s.envelope("TrafficStatisticsResponse", s.TrafficStatisticsSerializer()))
    def get(self, request):
        return self.ok(s.TrafficStatisticsSerializer, selectors.traffic_statistics(PERIOD.read(request)))


class ClientsStatisticsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Top clients", parameters=[HOURS_WEEK, LIMIT_50],
                   responses=s.envelope("ClientsStatisticsResponse", s.ClientsStatisticsSerializer()))
    def get(self, request):
        data = selectors.clients_statistics(HOURS_WEEK.read(request), masked=self.masked,
                                            limit=LIMIT_50.read(request))
        return self.ok(s.ClientsStatisticsSerializer, data)


class ClientDetailsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="One client: totals, top destinations, newest requests",
                   parameters=[HOURS_WEEK],
                   responses=s.envelope("ClientDetailsResponse", s.ClientDetailsSerializer()))
    def get(self, request, ip):
        try:
            client = canonical_client(ip)
        except ParseError:
            raise BadParameter("ip", "must be an IPv4 or IPv6 address or a client host name", ip) from None
        return self.ok(s.ClientDetailsSerializer, selectors.client_details(client, HOURS_WEEK.read(request),
                                                                           masked=self.masked))


class DomainsStatisticsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Top destination hosts", parameters=[HOURS_WEEK, LIMIT_50],
                   responses=s.envelope("DomainsStatisticsResponse", s.DomainStatisticsRowSerializer(many=True),
                                        hours=s.Int(), unique_domains=s.Int()))
    def get(self, request):
        data = selectors.domains_statistics(HOURS_WEEK.read(request), limit=LIMIT_50.read(request))
        rows = s.DomainStatisticsRowSerializer(data["domains"], many=True).data
        return Response(self.api_family.ok(rows, hours=data["hours"], unique_domains=data["unique_domains"]))


class ShadowItView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Shadow-IT services in use (catalogue editable in admin)",
                   parameters=[HOURS_WEEK],
                   responses=s.envelope("ShadowItResponse", s.ShadowItSerializer(many=True)))
    def get(self, request):
        return self.ok(s.ShadowItSerializer, selectors.shadow_it(HOURS_WEEK.read(request)), many=True)


class UserAgentsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="User-Agent categories and methods", parameters=[HOURS_WEEK, LIMIT],
                   responses=s.envelope("UserAgentsResponse", s.UserAgentsSerializer()))
    def get(self, request):
        data = selectors.user_agents(HOURS_WEEK.read(request), limit=LIMIT.read(request))
        return self.ok(s.UserAgentsSerializer, data)


class FileExtensionsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="File-extension distribution and file-type categories",
                   parameters=[HOURS_WEEK, EXTENSIONS_LIMIT],
                   responses=s.envelope("FileExtensionsResponse", s.FileExtensionsSerializer()))
    def get(self, request):
        return self.ok(s.FileExtensionsSerializer, selectors.file_extensions(
            HOURS_WEEK.read(request), limit=EXTENSIONS_LIMIT.read(request)))


class TopDomainsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="Top registrable domains (word cloud)",
                   parameters=[HOURS, DOMAINS_LIMIT],
                   responses=s.envelope("TopDomainsResponse", s.TopDomainSerializer(many=True)))
    def get(self, request):
        data = selectors.top_domains(HOURS.read(request), limit=DOMAINS_LIMIT.read(request))
        return self.ok(s.TopDomainSerializer, data, many=True)


class WafStatsView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="WAF statistics", parameters=[HOURS],
                   responses=s.envelope("WafStatsResponse", s.WafStatsSerializer()))
    def get(self, request):
        return self.ok(s.WafStatsSerializer, selectors.waf_stats(HOURS.read(request)))


class WafCategoriesView(ProxyLogsView):
    @extend_schema(tags=TAG, summary="WAF categories with their toggle (managed in admin)", parameters=[HOURS],
                   responses=s.envelope("WafCategoriesResponse", s.WafCategorySerializer(many=True)))
    def get(self, request):
        return self.ok(s.WafCategorySerializer, selectors.waf_categories(HOURS.read(request)), many=True)


@extend_schema(tags=TAG, summary="Audit log (admin and destructive actions)")
class AuditLogView(generics.ListAPIView):
    api_family = families.PROXY_LOGS
    serializer_class = s.AuditEventSerializer
    pagination_class = pagination.LimitOffsetPagination
    filterset_class = None
    default_limit = 50
    max_limit = 200

    def get_queryset(self):
        return selectors.audit_events()
