"""HTTP for flow reports: list (or group_by), ingest, clear, stats and retention at /api/v1/flow-reports."""

from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.utils import (
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from flowreports import selectors, services
from flowreports.api.serializers import FlowReportItemSerializer, FlowReportSerializer, RetentionSerializer
from flowreports.filtersets import FlowReportFilterSet
from flowreports.models import FlowReport
from vpnmonitor.api import families
from vpnmonitor.api.exceptions import BadParameter, PayloadTooLarge
from vpnmonitor.api.pagination import PagePerPagePagination
from vpnmonitor.api.params import QueryParams, choice_parameter
from vpnmonitor.api.parsers import is_json_integer
from vpnmonitor.api.principals import request_actor
from vpnmonitor.models import IngestCounter
from vpnmonitor.privacy import should_mask

MAX_INGEST_ITEMS = 10_000
MAX_RETENTION_DAYS = 36500
FAMILY = families.FLOW_REPORTS

_PAGED = inline_serializer("FlowReportPage", {"result": inline_serializer("FlowReportPageResult", {
    "items": FlowReportSerializer(many=True),
    "page": serializers.IntegerField(), "per_page": serializers.IntegerField(),
    "total_count": serializers.IntegerField(),
})})
_GROUPED = inline_serializer("FlowReportGroups", {"result": serializers.ListField(
    child=serializers.DictField(child=FlowReportSerializer(many=True)),
    help_text="One single-key object per group, in ascending order of the key.",
)})
_LIST = PolymorphicProxySerializer("FlowReportList", serializers=[_PAGED, _GROUPED], resource_type_field_name=None)


def _message(name, **fields):
    return inline_serializer(name, {"result": inline_serializer(f"{name}Result", {
        "message": serializers.CharField(), **fields,
    })})


_ERROR = inline_serializer("FlowReportsError", {"error": serializers.CharField()})


def filtered(view):
    """(filterset, filtered queryset) of a request, like DjangoFilterBackend; every bad value a 400."""
    filterset = DjangoFilterBackend().get_filterset(view.request, view.get_queryset(), view)
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    return filterset, filterset.qs


PAGE = PagePerPagePagination.page_parameter.described("1-based page index (of groups with group_by).")
PER_PAGE = PagePerPagePagination.per_page_parameter.described(
    "Items (or groups with group_by) per page: 1…100, default 25."
)
GROUP_BY = choice_parameter("group_by", ["day", "subscriber"],
                            description="Return flows grouped by UTC day or by subscriber instead of a paginated list.")


class FlowReportsView(generics.GenericAPIView):
    """GET lists (or groups) flow reports, POST stores a batch, DELETE clears them all."""

    api_family = FAMILY
    queryset = FlowReport.objects.order_by("-start_time", "-id")
    serializer_class = FlowReportSerializer
    filterset_class = FlowReportFilterSet
    pagination_class = PagePerPagePagination
    filterset = None

    @property
    def throttle_scope(self):
        return "ingest" if getattr(self, "request", None) is not None and self.request.method == "POST" else "default"

    def get_serializer_class(self):
        if self.request is not None and self.request.method == "POST":
            return FlowReportItemSerializer
        return FlowReportSerializer

    @extend_schema(
        summary="Get flow reports",
        description=(
            "A page of flow reports, newest first (by start time), filtered by every parameter given. "
            "start/end select UTC days on the flows' **start time** (end inclusive); the default window "
            "is the last 7 days. Any bad value is a 400 naming the parameter.\n\n"
            "With `group_by=day` or `group_by=subscriber` the result is a list of single-key objects "
            "`{key: [flows]}` in ascending key order (days as YYYY-MM-DD in UTC; flows without a "
            "subscriber group under \"\"). The groups are paged: `page`/`per_page` select which groups "
            f"(default 25, at most 100 per page), and each group lists at most {selectors.GROUP_ITEM_LIMIT} "
            "flows, the earliest first; list one group completely with the plain listing filtered to "
            "that day or subscriber."
        ),
        filters=True,
        parameters=[PAGE, PER_PAGE, GROUP_BY],
        responses={200: _LIST, 400: _ERROR},
    )
    def get(self, request):
        params = QueryParams(request)
        group_by = GROUP_BY.read(params)
        self.filterset, queryset = filtered(self)
        if group_by is None:
            page = self.paginate_queryset(queryset)
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        page, per_page = PAGE.read(params), PER_PAGE.read(params)
        groups = selectors.grouped_flows(queryset, group_by, offset=(page - 1) * per_page, limit=per_page)
        return Response(FAMILY.ok([
            {key: self.get_serializer(flows, many=True).data} for key, flows in groups
        ]))

    def page_with_total(self, queryset, start, stop):
        return selectors.flow_report_page(self.filterset, queryset, start, stop)

    @extend_schema(
        summary="Store flow reports",
        description=(
            f"A JSON list of at most {MAX_INGEST_ITEMS:,} flows in the listing's item shape (without id). "
            "All or nothing: one bad item rejects the batch with a 400 naming each bad item's index and "
            "field (e.g. `[3].bytes: ...`). subscriber_id and direction may be omitted; they are then "
            "attributed from the subscriber prefixes and VPN addresses. Needs an ingest or operator credential."
        ),
        request=FlowReportItemSerializer(many=True),
        responses={
            201: _message("FlowReportsStored", stored=serializers.IntegerField()),
            400: _ERROR, 413: _ERROR,
        },
    )
    def post(self, request):
        if isinstance(request.data, list) and len(request.data) > MAX_INGEST_ITEMS:
            raise PayloadTooLarge(
                f"At most {MAX_INGEST_ITEMS:,} flow reports per request (got {len(request.data):,}); "
                "split the batch."
            )
        serializer = FlowReportItemSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            result = services.store_flows(serializer.validated_data, exporter="http")
        # After the commit, so concurrent batches do not queue on the counter row while they store.
        IngestCounter.add("flow_reports", result.stored)
        return Response(
            FAMILY.ok({"message": "Flow reports stored successfully", "stored": result.stored}),
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Clear flow reports",
        description="Deletes every flow report. Operators only; recorded in the audit log.",
        responses={200: _message("FlowReportsCleared"), 403: _ERROR},
    )
    def delete(self, request):
        services.clear_flow_reports(actor=request_actor(request))
        return Response(FAMILY.ok({"message": "All flow reports cleared successfully"}))


class FlowReportStatsView(generics.GenericAPIView):
    """GET protocol breakdown and top uplink destinations of the filtered flows."""

    api_family = FAMILY
    queryset = FlowReport.objects.all()
    filterset_class = FlowReportFilterSet
    pagination_class = None
    serializer_class = None

    @extend_schema(
        summary="Get flow report stats",
        description=(
            "Flows per protocol (most first) and the 10 uplink destinations with the most flows, over "
            "the flows that match the filters (the same as the listing's, without page, per_page and "
            "group_by). Every filter applies to both parts, direction included: top_destinations_uplink "
            "only ever counts uplink flows, so with direction=downlink it is empty. In GDPR mode the "
            "destinations are counted per masked network (IPv4 /24, IPv6 /48)."
        ),
        filters=True,
        responses={200: inline_serializer("FlowReportStats", {"result": inline_serializer("FlowReportStatsResult", {
            "protocols": inline_serializer("ProtocolCount", {
                "protocol": serializers.IntegerField(), "count": serializers.IntegerField(),
            }, many=True),
            "top_destinations_uplink": inline_serializer("DestinationCount", {
                "ip": serializers.CharField(), "count": serializers.IntegerField(),
            }, many=True),
        })}), 400: _ERROR},
    )
    def get(self, request):
        filterset, queryset = filtered(self)
        return Response(FAMILY.ok(selectors.filtered_flow_stats(filterset, queryset, mask=should_mask(request))))


class FlowReportRetentionView(APIView):
    """GET the flow reports retention; PUT changes it (operators, audited) and prunes right away."""

    api_family = FAMILY

    @extend_schema(
        summary="Get flow reports retention policy",
        responses={200: inline_serializer("FlowReportsRetention", {"result": RetentionSerializer()})},
    )
    def get(self, request):
        return Response(FAMILY.ok({"days": services.retention_days()}))

    @extend_schema(
        summary="Update flow reports retention policy",
        description=(
            f"Body: `{{\"days\": N}}` with N a JSON integer from 1 to {MAX_RETENTION_DAYS}. Operators only; "
            "recorded in the audit log. Flow reports older than the new retention (by start time) are "
            "deleted right away."
        ),
        request=RetentionSerializer,
        responses={200: _message("FlowReportsRetentionUpdated"), 400: _ERROR, 403: _ERROR},
    )
    def put(self, request):
        data = request.data
        if not isinstance(data, dict) or "days" not in data:
            raise BadParameter("days", "is required in a JSON object body")
        days = data["days"]
        if not is_json_integer(days):
            raise BadParameter("days", "must be a positive JSON integer", days)
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise BadParameter("days", f"must be between 1 and {MAX_RETENTION_DAYS}", days)
        services.set_retention_days(days, actor=request_actor(request))
        return Response(FAMILY.ok({"message": "Flow reports retention policy updated successfully"}))
