"""The pagination classes of the API families, each with its envelope and strict parameters."""

import datetime as dt

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from vpnmonitor.api import families
from vpnmonitor.api.exceptions import BadParameter
from vpnmonitor.api.params import QueryParams
from vpnmonitor.db import GroupedWindow


def _require_ordering(queryset):
    # An unordered queryset pages nondeterministically: rows repeat or vanish between pages.
    if not queryset.ordered:
        raise ImproperlyConfigured(f"Paginating an unordered queryset of {queryset.model.__name__}")


def _page_with_total(view, queryset, start, stop):
    """(rows [start:stop], total) of an ordered queryset: from the view's page_with_total when it plans its own
    reads (rollup counts, keyset or time boundaries), else COUNT(*) and a slice."""
    planned = getattr(view, "page_with_total", None)
    if planned is not None:
        return planned(queryset, start, stop)
    total = queryset.count()
    return list(queryset[start:stop]), total


def _int_schema(name, description, minimum=None, maximum=None, default=None, required=False):
    schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


class PagePerPagePagination(BasePagination):
    """Flow reports: page >= 1, per_page 1..100 -> {"result": {items, page, per_page, total_count}}."""

    default_size = 25
    max_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.page = params.int("page", 1, minimum=1, maximum=10**7)
        self.per_page = params.int("per_page", self.default_size, minimum=1, maximum=self.max_size)
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
        return [
            _int_schema("page", "1-based page index.", minimum=1, default=1),
            _int_schema("per_page", "Items per page.", 1, self.max_size, self.default_size),
        ]


class LimitOffsetPagination(BasePagination):
    """Proxy logs: limit/offset -> {"status": "success", "data": [...], total, limit, offset}."""

    default_limit = 100
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.limit = params.int("limit", getattr(view, "default_limit", self.default_limit),
                                minimum=1, maximum=getattr(view, "max_limit", self.max_limit))
        self.offset = params.int("offset", 0, minimum=0, maximum=10**9)
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
        return [
            _int_schema("limit", "Maximum number of entries.", 1,
                        getattr(view, "max_limit", self.max_limit),
                        getattr(view, "default_limit", self.default_limit)),
            _int_schema("offset", getattr(view, "offset_description", "Number of entries to skip."), minimum=0,
                        default=0),
        ]


class PageLimitPagination(BasePagination):
    """Proxy analytics: page/limit -> {"data": [...], page, limit, total, totalPages}.

    Works on querysets and on aggregated (values()) querysets alike.
    """

    default_limit = 25
    max_limit = 100

    def paginate_queryset(self, queryset, request, view=None):
        _require_ordering(queryset)
        params = QueryParams(request)
        self.page = params.int("page", 1, minimum=1, maximum=10**7)
        self.limit = params.int("limit", self.default_limit, minimum=1, maximum=self.max_limit)
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
        return [
            _int_schema("page", "Page number.", minimum=1, default=1),
            _int_schema("limit", "Items per page.", 1, self.max_limit, self.default_limit),
        ]


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
        self.size = params.int(self.size_param, minimum=1, maximum=self.max_size, required=True)
        field = self._field(view, request)
        token = params.string(self.cursor_param, max_length=1000)
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
        return [
            _int_schema(self.size_param, "How many to return in one batch.", 1, self.max_size, required=True),
            {"name": self.cursor_param, "in": "query", "required": False, "schema": {"type": "string"},
             "description": "The nextCursor of the previous response."},
        ]
