"""The pagination classes of the API families, each with its envelope and strict parameters."""

import datetime as dt

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q
from drf_spectacular.plumbing import build_basic_type
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from vpnmonitor.api import families
from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.api.params import QueryParams, int_parameter, string_parameter
from vpnmonitor.db import GroupedWindow


def _require_ordering(queryset):
    # An unordered queryset pages nondeterministically: rows repeat or vanish between pages.
    if not queryset.ordered:
        raise ImproperlyConfigured(f"Paginating an unordered queryset of {queryset.model.__name__}")


def _schema(*parameters):
    """get_schema_operation_parameters() of QueryParameters: the ones the pagination reads."""
    return [{"name": parameter.name, "in": "query", "required": parameter.required,
             "description": parameter.description,
             "schema": parameter.type if isinstance(parameter.type, dict) else build_basic_type(parameter.type)}
            for parameter in parameters]


MAX_PAGE = 10**7


def _page_with_total(view, queryset, start, stop):
    """(rows [start:stop], total) of an ordered queryset: from the view's page_with_total when it plans its own
    reads (rollup counts, keyset or time boundaries), else COUNT(*) and a slice."""
    planned = getattr(view, "page_with_total", None)
    if planned is not None:
        return planned(queryset, start, stop)
    total = queryset.count()
    return list(queryset[start:stop]), total


class PagePerPagePagination(BasePagination):
    """Flow reports: page >= 1, per_page 1..100 -> {"result": {items, page, per_page, total_count}}."""

    default_size = 25
    max_size = 100
    page_parameter = int_parameter("page", 1, MAX_PAGE, 1, "1-based page index.", summary=False)
    per_page_parameter = int_parameter("per_page", 1, max_size, default_size, "Items per page.", summary=False)

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.page = self.page_parameter.read(params)
        self.per_page = self.per_page_parameter.read(params)
        start = (self.page - 1) * self.per_page
        rows, self.total = _page_with_total(view, queryset, start, start + self.per_page)
        return rows

    def get_paginated_response(self, data):
        return Response(families.FLOW_REPORTS.ok(
            {"items": data, "page": self.page, "per_page": self.per_page, "total_count": self.total}
        ))

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "properties": {"result": {"type": "object", "properties": {
            "items": schema, "page": {"type": "integer"}, "per_page": {"type": "integer"},
            "total_count": {"type": "integer"},
        }}}}

    def get_schema_operation_parameters(self, view):
        return _schema(self.page_parameter, self.per_page_parameter)


class LimitOffsetPagination(BasePagination):
    """Proxy logs: limit/offset -> {"status": "success", "data": [...], total, limit, offset}."""

    default_limit = 100
    max_limit = 1000
    offset_parameter = int_parameter("offset", 0, 10**9, 0, "Number of entries to skip.", summary=False)

    def limit_parameter(self, view):
        # A view may set its own default_limit and max_limit.
        return int_parameter("limit", 1, getattr(view, "max_limit", self.max_limit),
                             getattr(view, "default_limit", self.default_limit), "Maximum number of entries.",
                             summary=False)

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.limit = self.limit_parameter(view).read(params)
        self.offset = self.offset_parameter.read(params)
        rows, self.total = _page_with_total(view, queryset, self.offset, self.offset + self.limit)
        return rows

    def get_paginated_response(self, data):
        return Response(families.PROXY_LOGS.ok(data, total=self.total, limit=self.limit, offset=self.offset))

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "properties": {
            "status": {"type": "string", "example": "success"}, "data": schema,
            "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        }}

    def get_schema_operation_parameters(self, view):
        offset = self.offset_parameter
        if getattr(view, "offset_description", None):
            offset = offset.described(view.offset_description)
        return _schema(self.limit_parameter(view), offset)


class PageLimitPagination(BasePagination):
    """Proxy analytics: page/limit -> {"data": [...], page, limit, total, totalPages}.

    Works on querysets and on aggregated (values()) querysets alike.
    """

    default_limit = 25
    max_limit = 100
    page_parameter = int_parameter("page", 1, MAX_PAGE, 1, "Page number.", summary=False)
    limit_parameter = int_parameter("limit", 1, max_limit, default_limit, "Items per page.", summary=False)

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.page = self.page_parameter.read(params)
        self.limit = self.limit_parameter.read(params)
        start = (self.page - 1) * self.limit
        if queryset.query.group_by is None or not queryset.query.values_select:
            self.total = queryset.count()
            return list(queryset[start:start + self.limit])
        # An aggregate: the page and the number of groups from one pass over the rows, not two.
        rows = list(queryset.annotate(_groups=GroupedWindow(Count("*")))[start:start + self.limit])
        self.total = rows[0]["_groups"] if rows else (queryset.count() if start else 0)
        for row in rows:
            del row["_groups"]
        return rows

    @property
    def total_pages(self):
        return (self.total + self.limit - 1) // self.limit

    def get_paginated_response(self, data):
        return Response(families.PROXY_ANALYTICS.ok(
            data, page=self.page, limit=self.limit, total=self.total, totalPages=self.total_pages,
        ))

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "properties": {
            "data": schema, "page": {"type": "integer"}, "limit": {"type": "integer"},
            "total": {"type": "integer"}, "totalPages": {"type": "integer"},
        }}

    def get_schema_operation_parameters(self, view):
        return _schema(self.page_parameter, self.limit_parameter)


class SignedKeysetPagination(BasePagination):
    """An opaque, signed keyset cursor on (time field, id).

    Unlike DRF's CursorPagination, the cursor cannot be forged (it is signed), a broken one
    is a 400 rather than a 404, and the ordering is unique because the id breaks ties, so
    rows inserted or updated while a client pages are neither skipped nor repeated within
    the ordering. The view names the time field with `cursor_field` or get_cursor_field().
    """

    salt = "vpnmonitor.api.cursor"
    size_param = "size"
    cursor_param = "cursor"
    max_size = 100

    def size_parameter(self):
        return int_parameter(self.size_param, 1, self.max_size, None, "How many to return in one batch.",
                             summary=False, required=True)

    def cursor_parameter(self):
        return string_parameter(self.cursor_param, "The nextCursor of the previous response.", max_length=1000)

    def _field(self, view, request):
        getter = getattr(view, "get_cursor_field", None)
        return getter(request) if getter else view.cursor_field

    def encode(self, field, value, pk):
        return signing.dumps({"f": field, "t": value.isoformat(), "id": pk}, salt=self.salt, compress=True)

    def decode(self, token, field):
        try:
            data = signing.loads(token, salt=self.salt)
            if data["f"] != field:
                raise ValueError("cursor belongs to another listing")
            return dt.datetime.fromisoformat(data["t"]), int(data["id"])
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            raise BadParameter(self.cursor_param, "is not a cursor this API issued") from None

    def paginate_queryset(self, queryset, request, view=None):
        params = QueryParams(request)
        self.size = self.size_parameter().read(params)
        field = self._field(view, request)
        token = self.cursor_parameter().read(params)
        if token:
            after_time, after_id = self.decode(token, field)
            # "field >= t" is implied by the OR, but only it lets the index seek straight to the cursor,
            # so a deep page costs what the first does.
            queryset = queryset.filter(**{f"{field}__gte": after_time}).filter(
                Q(**{f"{field}__gt": after_time}) | Q(pk__gt=after_id)
            )
        rows = list(queryset.order_by(field, "pk")[: self.size + 1])
        self.next_cursor = None
        if len(rows) > self.size:
            rows = rows[: self.size]
            last = rows[-1]
            self.next_cursor = self.encode(field, getattr(last, field), last.pk)
        return rows

    def get_paginated_response(self, data):
        extra = {"nextCursor": self.next_cursor} if self.next_cursor else {}
        return Response(families.SESSIONS.ok(data, **extra))

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "required": ["sessions"], "properties": {
            "sessions": schema,
            "nextCursor": {"type": "string", "description": "Absent on the last page."},
        }}

    def get_schema_operation_parameters(self, view):
        return _schema(self.size_parameter(), self.cursor_parameter())
