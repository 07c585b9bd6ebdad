"""Proxy analytics API: POST /analytics/ingest and the /analytics charts and breakdowns."""

import datetime as dt
import functools

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import generics, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from proxytraffic import schema, selectors, serializers, services
from vpnmonitor.api import families, parsers
from vpnmonitor.api.exceptions import BadParameter, PayloadTooLarge
from vpnmonitor.api.pagination import PageLimitPagination
from vpnmonitor.api.params import (
    QueryParameter,
    QueryParams,
    choice_parameter,
    int_parameter,
    string_parameter,
)
from vpnmonitor.api.principals import tenant_of
from vpnmonitor.models import IngestCounter
from vpnmonitor.timeseries import window_between

# 10,000 records of the spec's example take about 4.5 MB; leave room for long domains and errors.
DEFAULT_MAX_INGEST_BYTES = 16 * 1024 * 1024
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)

WINDOW_DOC = (
    "The range [from, to) may span at most 62 days (2 months); a date alone as `to` means the end of that day. "
    "Traffic is stored in 15-minute buckets and a bucket counts when it overlaps the range. "
)
CHART_DOC = (
    WINDOW_DOC + "Chart buckets follow the range: up to 2 days → 15 minutes, up to 14 days → 1 hour, "
    "longer → 1 day (UTC, aligned to the epoch); every bucket is listed, empty ones as \"0\". "
    "An API key scoped to a user_id only ever sees that tenant's traffic."
)

def _moment(params, name, *, end_of_day=False):
    try:
        moment = params.datetime(name, required=True)
        if end_of_day and len(params.raw(name).strip()) == 10:
            moment += dt.timedelta(days=1)
    except OverflowError:
        raise BadParameter(name, "is out of range", params.raw(name)) from None
    if not EARLIEST <= moment < LATEST:
        raise BadParameter(name, "must be between 1970-01-01 and 9999-01-01", params.raw(name))
    return moment


FROM = QueryParameter("from", OpenApiTypes.STR, _moment, required=True,
                      description="Start, ISO 8601 date or date-time (UTC when no offset), e.g. 2026-03-01",
                      examples=[OpenApiExample("a day", value="2026-03-01")])
TO = QueryParameter("to", OpenApiTypes.STR, functools.partial(_moment, end_of_day=True), required=True,
                    description="End (exclusive), ISO 8601 date or date-time; after `from`, at most 62 days later",
                    examples=[OpenApiExample("the next day", value="2026-03-02")])
DOMAIN = string_parameter("domain", "Only this domain (exact, case-insensitive)", max_length=255)
ORDER = int_parameter("orderId", 0, schema.MAX_ID, None, "Only this order (its numeric id)", summary=False,
                      int_format="int64")
SORT_BY = choice_parameter("sortBy", ("bytes", "count"), "bytes",
                           description="bytes (sent + received, default) or count (requests)")
DOMAINS_LIMIT = int_parameter("limit", 1, 100, 30, "Max results")
ERRORS_LIMIT = int_parameter("limit", 1, 100, 50, "Max results")


def _error_responses(*codes):
    return {code: serializers.AnalyticsErrorSerializer for code in codes}


def traffic_query(request):
    """The TrafficQuery of a request: from/to, domain and orderId checked, the caller's tenant applied."""
    params = QueryParams(request)
    start = FROM.read(params)
    end = TO.read(params)
    try:
        window = window_between(start, end, max_span=selectors.MAX_RANGE)
    except ValueError as exc:
        raise BadParameter("to", str(exc).replace("the end", "'to'").replace("the start", "'from'"),
                           params.raw("to")) from None
    return selectors.TrafficQuery(
        start=window.start, end=window.end, tenant=tenant_of(request),
        order_id=ORDER.read(params),
        domain=DOMAIN.read(params),
    )


def _envelope(name, item_serializer):
    return inline_serializer(name, {"data": item_serializer(many=True)})


class AnalyticsView(APIView):
    api_family = families.PROXY_ANALYTICS


class IngestBodyParser(BaseParser):
    """The raw body, with this endpoint's own size limit, checked before the body is read.

    The project's parser reads at most DATA_UPLOAD_MAX_MEMORY_SIZE; a full batch of 10,000 records
    may be larger. The view decodes: a valid batch in one msgspec pass, anything else by parsers.load_json().
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, "PROXY_TRAFFIC_MAX_INGEST_BYTES", DEFAULT_MAX_INGEST_BYTES)
        return parsers.read_body(stream, (parser_context or {}).get("request"), limit, noun="a batch")


class IngestView(AnalyticsView):
    """POST /analytics/ingest — proxy workers push pre-aggregated records."""

    throttle_scope = "ingest"
    parser_classes = [IngestBodyParser]

    @extend_schema(
        summary="Ingest pre-aggregated proxy traffic",
        description=(
            "Up to 10,000 records per batch, all or nothing: a 400 names each bad record's index and field "
            "(`logs[3].port: must be between 0 and 65535`). Larger batches or bodies over 16 MiB are 413. "
            "Records are summed into 15-minute buckets per user, order, domain, error, worker, peer, port, "
            "protocol, ip_out and ip_from; max_concurrency keeps the maximum. An ingest key scoped to a "
            "user_id may only push records of that user_id."
        ),
        request=serializers.IngestSerializer,
        responses={204: None, **_error_responses(400, 401, 403, 413, 429)},
        tags=["proxy analytics"],
    )
    def post(self, request):
        raw, tenant = request.data, tenant_of(request)
        records = schema.decode_batch(raw, tenant=tenant) if isinstance(raw, bytes) else None
        if records is None:  # not a valid batch: find out why, and say so
            body = parsers.load_json(raw, request.content_type) if isinstance(raw, bytes) else raw
            logs = body.get("logs") if isinstance(body, dict) else None
            if isinstance(logs, list) and len(logs) > schema.MAX_RECORDS:
                raise PayloadTooLarge(
                    f"A batch may hold at most {schema.MAX_RECORDS:,} records (got {len(logs):,}); split it."
                )
            records = schema.check_batch(body, tenant=tenant)
        services.ingest_records(records)
        IngestCounter.add("proxy_traffic", len(records))  # after the commit, so batches don't queue on it
        return Response(status=status.HTTP_204_NO_CONTENT)


def chart_schema(summary, name, item):
    return extend_schema(
        summary=summary, description=CHART_DOC, parameters=[FROM, TO, DOMAIN, ORDER],
        responses={200: _envelope(name, item), **_error_responses(400, 401, 403, 429)},
        tags=["proxy analytics"],
    )


class TrafficChartView(AnalyticsView):
    @chart_schema("Traffic chart: bytes sent and received over time", "TrafficChart",
                  serializers.TrafficPointSerializer)
    def get(self, request):
        rows = selectors.traffic_chart(traffic_query(request))
        return Response(self.api_family.ok(serializers.TrafficPointSerializer(rows, many=True).data))


class RequestsChartView(AnalyticsView):
    @chart_schema("Requests chart: requests and errors over time", "RequestsChart",
                  serializers.RequestsPointSerializer)
    def get(self, request):
        rows = selectors.requests_chart(traffic_query(request))
        return Response(self.api_family.ok(serializers.RequestsPointSerializer(rows, many=True).data))


class ConcurrencyChartView(AnalyticsView):
    @chart_schema("Concurrency chart: the highest reported concurrency over time", "ConcurrencyChart",
                  serializers.ConcurrencyPointSerializer)
    def get(self, request):
        rows = selectors.concurrency_chart(traffic_query(request))
        return Response(self.api_family.ok(serializers.ConcurrencyPointSerializer(rows, many=True).data))


class DomainsView(AnalyticsView):
    @extend_schema(
        summary="Top domains by bytes or requests",
        description=WINDOW_DOC + "Ties are broken by domain name.",
        parameters=[
            FROM, TO, DOMAIN, ORDER,
            SORT_BY,
            DOMAINS_LIMIT,
        ],
        responses={200: _envelope("DomainBreakdown", serializers.DomainSerializer),
                   **_error_responses(400, 401, 403, 429)},
        tags=["proxy analytics"],
    )
    def get(self, request):
        query = traffic_query(request)
        rows = selectors.domains(query, sort_by=SORT_BY.read(request), limit=DOMAINS_LIMIT.read(request))
        return Response(self.api_family.ok(serializers.DomainSerializer(rows, many=True).data))


class ErrorsView(AnalyticsView):
    @extend_schema(
        summary="Errors by type",
        description=WINDOW_DOC + (
            "Sorted by failed requests (error_count). first_seen/last_seen are the earliest and latest record "
            "timestamps with that error; sample_domains are up to 3 domains with the most failed requests of "
            'that type. Records without an error type ("") are not listed.'
        ),
        parameters=[FROM, TO, DOMAIN, ORDER,
                    ERRORS_LIMIT],
        responses={200: _envelope("ErrorBreakdown", serializers.ErrorTypeSerializer),
                   **_error_responses(400, 401, 403, 429)},
        tags=["proxy analytics"],
    )
    def get(self, request):
        query = traffic_query(request)
        rows = selectors.errors(query, limit=ERRORS_LIMIT.read(request))
        return Response(self.api_family.ok(serializers.ErrorTypeSerializer(rows, many=True).data))


class WebsitesView(generics.ListAPIView):
    """GET /analytics/websites — distinct domains, most requests first, paginated."""

    api_family = families.PROXY_ANALYTICS
    serializer_class = serializers.WebsiteSerializer
    pagination_class = PageLimitPagination
    filter_backends = []

    def get_queryset(self):
        return selectors.websites(traffic_query(self.request))

    @extend_schema(
        summary="Visited websites",
        description=WINDOW_DOC + (
            "Distinct domains, most requests first (ties by name). first_visit/last_visit are the earliest and "
            "latest record timestamps of the domain in the range."
        ),
        parameters=[FROM, TO, DOMAIN, ORDER],
        responses={200: serializers.WebsiteSerializer(many=True), **_error_responses(400, 401, 403, 429)},
        tags=["proxy analytics"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
