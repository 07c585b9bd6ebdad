"""Dashboard pages: the overview, one VPN client, flows and the proxy, drawn from the apps' selectors."""


from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.http import Http404, HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import urlencode

from dashboard import charts
from dashboard import selectors as dashboard_selectors
from flowreports import selectors as flow_selectors
from flowreports.filtersets import FlowReportFilterSet
from flowreports.models import FlowReport
from monitoring import selectors as vpn_selectors
from proxylogs import selectors as proxy_selectors
from proxylogs.security import security_score
from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.privacy import mask_endpoint, masker, should_mask

PROTOCOL_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP", 51: "AH",
                  58: "ICMPv6", 89: "OSPF", 132: "SCTP"}
PROXY_HOURS = {"24h": 24, "3d": 72, "7d": 168}
FLOW_FILTERS = ("subscriber_id", "protocol", "source", "destination", "direction", "action", "start", "end")
FLOWS_PER_PAGE = 50


def _choice(request, name, choices, default):
    value = request.GET.get(name, default)
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return value


def _page(request, template, context, status=200):
    context["gdpr_masked"] = should_mask(request)
    return render(request, template, context, status=status)


def protocol_name(number):
    return PROTOCOL_NAMES.get(number, str(number))


def _connection(row, mask):
    """A VPN client row as shown: addresses through the request's masker, rates in Mbit/s."""
    return {**row, "real_address": mask_endpoint(row["real_address"], mask),
            "virtual_address": mask(row["virtual_address"]),
            "recv_mbps": vpn_selectors.mbps(row["recv_rate_bps"] or 0, 1),
            "sent_mbps": vpn_selectors.mbps(row["sent_rate_bps"] or 0, 1)}


def _traffic_chart(history, title):
    labels = [point["timestamp"] for point in history]
    return charts.line_chart([
        charts.Series("received", [p["total_rx"] for p in history], charts.PALETTE[0], format=charts.human_bytes),
        charts.Series("sent", [p["total_tx"] for p in history], charts.PALETTE[1], format=charts.human_bytes),
        charts.Series("active clients", [p["active_count"] for p in history], charts.PALETTE[3], area=False,
                      axis="right"),
    ], labels, title=title, chart_id="chart-vpn-traffic")


def _proxy_timeline_chart(timeline, title):
    return charts.column_chart(
        [charts.Column(p["time"], [p["total"] - p["blocked"], p["blocked"]]) for p in timeline],
        parts=["allowed", "blocked"], title=title, chart_id="chart-proxy-timeline",
    )


def _protocol_chart(stats, title):
    return charts.donut_chart([(protocol_name(row["protocol"]), row["count"]) for row in stats["protocols"]],
                              title=title, chart_id="chart-flow-protocols")


@login_required
def overview(request):
    range_name = _choice(request, "range", tuple(vpn_selectors.ANALYTICS_STEPS), "24h")
    mask = masker(request)
    analytics = vpn_selectors.analytics(range_name)
    history = analytics[f"global_history_{range_name}"]
    top = analytics[f"top_clients_{range_name}"]
    distribution = analytics["traffic_distribution"]
    active = [_connection(row, mask) for row in dashboard_selectors.active_clients()]
    flow_filters = FlowReportFilterSet({}, queryset=FlowReport.objects.all())
    flow_stats = flow_selectors.filtered_flow_stats(flow_filters, flow_filters.qs, mask=should_mask(request))
    timeline = proxy_selectors.timeline(24)
    score = security_score()
    context = {
        "range": range_name,
        "ranges": tuple(vpn_selectors.ANALYTICS_STEPS),
        "system": vpn_selectors.system_stats(),
        "active_clients": active,
        "max_concurrent": analytics[f"max_concurrent_{range_name}"],
        "traffic_chart": _traffic_chart(history, f"Traffic of all VPN clients, last {range_name}"),
        "top_clients_chart": charts.bar_chart(
            [charts.Bar(row["common_name"], row["total_bytes"], reverse("dashboard:vpn-client",
                                                                         args=[row["common_name"]]))
             for row in top],
            title=f"Top clients by traffic, last {range_name}", value_format=charts.human_bytes,
            chart_id="chart-top-clients",
        ),
        "distribution_chart": charts.donut_chart(
            [("received", distribution["rx"]), ("sent", distribution["tx"])],
            title=f"Received and sent, last {range_name}", value_format=charts.human_bytes,
            chart_id="chart-distribution",
        ),
        "protocol_chart": _protocol_chart(flow_stats, "Flows per protocol, last 7 days"),
        "flow_total": sum(row["count"] for row in flow_stats["protocols"]),
        "proxy_chart": _proxy_timeline_chart(timeline, "Proxy requests per hour, last 24 hours"),
        "proxy_totals": {"total": sum(p["total"] for p in timeline), "blocked": sum(p["blocked"] for p in timeline)},
        "score": score,
        "score_meter": charts.meter(score["score"], score["max_score"], title="Security score", chart_id="chart-score"),
    }
    return _page(request, "dashboard/overview.html", context)


@login_required
def vpn_client(request, common_name):
    range_name = _choice(request, "range", vpn_selectors.STATS_RANGES, "24h")
    if not vpn_selectors.client_exists(common_name):
        raise Http404("No VPN client with this common name")
    mask = masker(request)
    now = timezone.now()
    history, resolution, _with_data = vpn_selectors.client_history(common_name, range_name, now=now)
    labels = [point["timestamp"] for point in history]
    chart = charts.line_chart([
        charts.Series("received Mbit/s", [p["bytes_received_rate_mbps"] for p in history], charts.PALETTE[0]),
        charts.Series("sent Mbit/s", [p["bytes_sent_rate_mbps"] for p in history], charts.PALETTE[1]),
    ], labels, title=f"{common_name}: traffic rate, last {range_name}", chart_id="chart-client-history")
    connections = [_connection(row, mask) for row in dashboard_selectors.client_connections(common_name)]
    sessions = [
        {**row, "real_ip": mask(row["real_ip"]), "virtual_address": mask(row["virtual_address"])}
        for row in dashboard_selectors.client_sessions(common_name)
    ]
    context = {
        "common_name": common_name,
        "range": range_name,
        "ranges": vpn_selectors.STATS_RANGES,
        "resolution": resolution,
        "points": len(history),
        "history_chart": chart,
        "summary": vpn_selectors.client_summary(common_name),
        "connections": connections,
        "sessions": sessions,
        "certificates": [
            {**cert, "expired": cert["not_after"] <= now, "days_remaining": (cert["not_after"] - now).days}
            for cert in dashboard_selectors.client_certificates(common_name)
        ],
    }
    return _page(request, "dashboard/vpn_client.html", context)


class FlowPaginator(Paginator):
    """Django's paginator over the filtered flows, counted and paged by the API's selectors (rollup counts,
    deferred deep pages) instead of COUNT(*) and OFFSET."""

    def __init__(self, filterset, queryset, per_page):
        super().__init__(queryset, per_page)
        self.filterset = filterset

    @cached_property
    def count(self):
        return flow_selectors.count_flows(self.filterset, self.object_list)

    def page(self, number):
        number = self.validate_number(number)
        start = (number - 1) * self.per_page
        return self._get_page(flow_selectors.page_of(self.object_list, start, start + self.per_page), number, self)


@login_required
def flows(request):
    params = {name: request.GET[name] for name in FLOW_FILTERS if request.GET.get(name, "").strip()}
    mask = masker(request)
    context = {"filters": {name: request.GET.get(name, "") for name in FLOW_FILTERS}}
    try:
        filterset = FlowReportFilterSet(params, queryset=FlowReport.objects.order_by("-start_time", "-id"))
        queryset = filterset.qs
        stats = flow_selectors.filtered_flow_stats(filterset, queryset, mask=should_mask(request))
        page = FlowPaginator(filterset, queryset, FLOWS_PER_PAGE).get_page(request.GET.get("page"))
    except BadParameter as error:
        context["error"] = error.message
        return _page(request, "dashboard/flows.html", context, status=400)
    query = urlencode(params)
    context.update({
        "protocol_chart": charts.bar_chart(
            [charts.Bar(protocol_name(row["protocol"]), row["count"]) for row in stats["protocols"]],
            title="Flows per protocol", chart_id="chart-flow-protocols",
        ),
        "destinations_chart": charts.bar_chart(
            [charts.Bar(row["ip"], row["count"]) for row in stats["top_destinations_uplink"]],
            title="Top uplink destinations by flows", chart_id="chart-flow-destinations",
        ),
        "total": page.paginator.count,
        "page": page,
        "query": query,
        "rows": [
            {"start_time": flow.start_time, "subscriber_id": flow.subscriber_id, "direction": flow.direction,
             "source": mask(flow.source_ip), "source_port": flow.source_port,
             "destination": mask(flow.destination_ip), "destination_port": flow.destination_port,
             "protocol": protocol_name(flow.protocol), "packets": flow.packets, "bytes": flow.bytes,
             "action": flow.action}
            for flow in page.object_list
        ],
    })
    return _page(request, "dashboard/flows.html", context)


@login_required
def proxy(request):
    window = _choice(request, "window", tuple(PROXY_HOURS), "24h")
    hours = PROXY_HOURS[window]
    masked = should_mask(request)
    timeline = proxy_selectors.timeline(hours)
    domains = proxy_selectors.top_domains(hours, limit=15)
    clients = proxy_selectors.top_clients(hours, masked=masked, limit=10)
    score = security_score()
    context = {
        "window": window,
        "windows": tuple(PROXY_HOURS),
        "totals": proxy_selectors.window_totals(hours),
        "stats": proxy_selectors.log_stats(),
        "timeline_chart": _proxy_timeline_chart(timeline, f"Proxy requests per hour, last {window}"),
        "domains_chart": charts.bar_chart([charts.Bar(row["domain"], row["count"]) for row in domains],
                                          title=f"Top domains by requests, last {window}",
                                          chart_id="chart-proxy-domains"),
        "clients_chart": charts.bar_chart([charts.Bar(row["client_ip"], row["requests"]) for row in clients],
                                          title=f"Top clients by requests, last {window}",
                                          chart_id="chart-proxy-clients"),
        "recent_blocks": proxy_selectors.recent_blocks(masked=masked, limit=20),
        "score": score,
        "score_meter": charts.meter(score["score"], score["max_score"], title="Security score", chart_id="chart-score"),
    }
    return _page(request, "dashboard/proxy.html", context)


def favicon(request):
    # Resolved per request: with the manifest storage the hashed name exists only after collectstatic.
    return HttpResponsePermanentRedirect(static("dashboard/favicon.svg"))
