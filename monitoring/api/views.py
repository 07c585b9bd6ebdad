"""The OpenVPN monitor API (/api/v1/...): thin views over monitoring.selectors."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import selectors
from monitoring.models import VpnServer
from vpnmonitor.api import families
from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.api.params import QueryParams, choice_parameter, string_parameter
from vpnmonitor.timeseries import format_timestamp

SERVER_PARAM = string_parameter("server", "Narrow to one VPN server (its name).", max_length=100)
ANALYTICS_RANGE = choice_parameter("range", selectors.ANALYTICS_STEPS, "24h")
STATS_RANGE = choice_parameter("range", selectors.STATS_RANGES, "24h")
RESOLUTION = choice_parameter("resolution", selectors.RESOLUTIONS, "auto")


def _server(request):
    name = SERVER_PARAM.read(request)
    if name is None:
        return None
    server = VpnServer.objects.filter(name=name).first()
    if server is None:
        raise BadParameter("server", "no VPN server has this name", name)
    return server


class MonitorView(APIView):
    api_family = families.MONITOR


class AnalyticsView(MonitorView):
    @extend_schema(
        summary="Global analytics (dashboard)",
        description="Exactly 96 zero-filled points: 15-minute steps for 24h, 105 minutes for 7d, 450 minutes "
        "for 30d. Totals and concurrency come from every poll; top clients from the hourly rollup.",
        parameters=[
            ANALYTICS_RANGE,
            SERVER_PARAM,
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        range_name = ANALYTICS_RANGE.read(request)
        server = _server(request)
        now = timezone.now()
        data = selectors.analytics(range_name, server=server, now=now)
        return Response(families.MONITOR.ok(data, timestamp=format_timestamp(now), range=range_name))


class ClientStatsView(MonitorView):
    @extend_schema(
        summary="Client statistics (detail + history)",
        operation_id="api_v1_stats_client_retrieve",
        description="resolution=auto follows the dynamic-aggregation table: 1h → 30 s, 3h → 1 min, 6h → 2 min, "
        "12h → 5 min, 24h → 15 min (usage_history), 7d → 1 h (168 points, stats_hourly), 30d → 6 h "
        "(120 points, stats_6h), 1y → 1 day (365 points, stats_daily). Every resolution but raw gives range / step "
        "points ending with the current bucket, zero-filled; meta.record_count counts the points with data. "
        "Rates are averages over each point's period, in Mbit/s. "
        "Forced resolutions cover at most: raw 24h, 5min 7d, hourly 30d, 6h and daily 1y.",
        parameters=[
            OpenApiParameter("common_name", OpenApiTypes.STR, OpenApiParameter.PATH,
                             description="The client's certificate common name.",
                             examples=[OpenApiExample("a client of the demo data", value="user-alice")]),
            STATS_RANGE,
            RESOLUTION,
            SERVER_PARAM,
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, common_name):
        params = QueryParams(request)
        range_name = STATS_RANGE.read(params)
        resolution = RESOLUTION.read(params)
        server = _server(params)
        if not selectors.client_exists(common_name, server):
            raise NotFound(f"No client with common name {common_name!r}.")
        try:
            history, chosen, with_data = selectors.client_history(common_name, range_name, resolution, server=server)
        except ValueError as exc:
            raise BadParameter("resolution", str(exc), resolution) from None
        data = {
            "common_name": common_name,
            **selectors.client_summary(common_name, server=server),
            "history": history,
            "meta": {"resolution_used": chosen.table, "record_count": with_data, "range": range_name,
                     "step_seconds": chosen.step_seconds},
        }
        return Response(families.MONITOR.ok(data))


class StatsView(MonitorView):
    @extend_schema(summary="Current statistics of all clients", parameters=[SERVER_PARAM],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        rows = selectors.all_clients(server=_server(request))
        return Response(families.MONITOR.ok(rows, count=len(rows)))


class SystemStatsView(MonitorView):
    @extend_schema(summary="System statistics", parameters=[SERVER_PARAM], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(families.MONITOR.ok(selectors.system_stats(server=_server(request))))


class ClientsView(MonitorView):
    @extend_schema(summary="Client names and status (for dropdowns)", parameters=[SERVER_PARAM],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        rows = selectors.all_clients(server=_server(request))
        data = [{"common_name": row["common_name"], "status": row["status"]} for row in rows]
        return Response(families.MONITOR.ok(data, count=len(data)))


class CertificatesView(MonitorView):
    @extend_schema(summary="Certificate expiry", parameters=[SERVER_PARAM], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        rows = selectors.certificates(server=_server(request))
        return Response(families.MONITOR.ok(rows, count=len(rows)))
