"""The flow report filters (list, group_by and stats): strict parsing, every bad value a 400 naming it."""

import datetime as dt
import re

import django_filters
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field

from flowreports import rollups
from flowreports.models import FlowReport
from vpnmonitor.addresses import ZoneIndexError, canonical_ip
from vpnmonitor.api.exceptions import BadParameter

DEFAULT_DAYS = 7
_PORT_RE = re.compile(r"^\d{1,5}$")
_ENDPOINT_HELP = (
    "Accepts: IP (IPv4 or IPv6, e.g. 192.0.2.1 or 2001:db8::1), IP:port (192.0.2.1:443), "
    "[IPv6]:port ([2001:db8::1]:443) or :port (:53). A bare IPv6 address is an address, never address:port."
)


def parse_port(name, text, original):
    if not _PORT_RE.match(text) or int(text) > 65535:
        raise BadParameter(name, "must have a port between 0 and 65535", original)
    return int(text)


def parse_address(name, text, original):
    try:
        return canonical_ip(text)
    except ZoneIndexError:
        raise BadParameter(name, "must not carry an IPv6 zone index", original) from None
    except ValueError:
        raise BadParameter(name, "must be IP, IP:port, [IPv6]:port or :port", original) from None


def parse_endpoint(name, value):
    """'IP', 'IP:port', '[IPv6]:port', '[IPv6]' or ':port' -> (ip text or None, port or None)."""
    text = value.strip()
    if not text:
        raise BadParameter(name, "must be IP, IP:port, [IPv6]:port or :port", value)
    if text.startswith(":") and not text.startswith("::"):
        return None, parse_port(name, text[1:], value)
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            raise BadParameter(name, "has an unclosed '['", value)
        address = text[1:close]
        if ":" not in address:
            raise BadParameter(name, "may only bracket an IPv6 address", value)
        rest = text[close + 1:]
        if rest == "":
            return parse_address(name, address, value), None
        if not rest.startswith(":"):
            raise BadParameter(name, "must be [IPv6]:port", value)
        return parse_address(name, address, value), parse_port(name, rest[1:], value)
    try:
        # Anything that is an address as a whole is an address: 2001:db8::1 is not '2001:db8:' port 1.
        return parse_address(name, text, value), None
    except BadParameter:
        if text.count(":") != 1:
            raise
    host, port = text.split(":")
    return parse_address(name, host, value), parse_port(name, port, value)


def parse_day(name, value):
    text = value.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, "must be a date in the form YYYY-MM-DD", value) from None


def time_window(data, *, now=None):
    """(first, last) instants, both inclusive, that start_time must fall in.

    start is 00:00:00 UTC of its day and end 23:59:59.999999 UTC of its day. Without end the
    window ends now; without start it begins 7 days before its end.
    """
    now = now or timezone.now()
    start_text, end_text = data.get("start") or "", data.get("end") or ""
    end = now
    if end_text.strip():
        end = dt.datetime.combine(parse_day("end", end_text), dt.time.max, tzinfo=dt.UTC)
    if start_text.strip():
        start = dt.datetime.combine(parse_day("start", start_text), dt.time.min, tzinfo=dt.UTC)
    else:
        try:
            start = end - dt.timedelta(days=DEFAULT_DAYS)
        except OverflowError:
            start = dt.datetime.min.replace(tzinfo=dt.UTC)
    if start > end:
        shown = start_text.strip() or start.date().isoformat()
        raise BadParameter("start", f"must not be after end ({end.date().isoformat()})", shown)
    return start, end


def _integer_schema(minimum, maximum):
    return extend_schema_field({"type": "integer", "minimum": minimum, "maximum": maximum})


def _choice_schema(choices):
    return extend_schema_field({"type": "string", "enum": list(choices)})


def _date_schema():
    return extend_schema_field({"type": "string", "format": "date"})


class FlowReportFilterSet(django_filters.FilterSet):
    """subscriber_id, protocol, source, destination, direction, action, and the start/end window.

    The window (on start_time) always applies; by default it is the last 7 days.
    """

    subscriber_id = django_filters.CharFilter(
        method="filter_subscriber_id", help_text="Flows of this subscriber (exact match)."
    )
    protocol = _integer_schema(1, 255)(django_filters.CharFilter(
        method="filter_protocol", help_text="IANA protocol number, 1…255 (6 TCP, 17 UDP, 58 ICMPv6)."
    ))
    source = django_filters.CharFilter(method="filter_source", help_text="Flow source. " + _ENDPOINT_HELP)
    destination = django_filters.CharFilter(
        method="filter_destination", help_text="Flow destination. " + _ENDPOINT_HELP
    )
    start = _date_schema()(django_filters.CharFilter(
        method="filter_window_applied",
        help_text="First day (UTC, YYYY-MM-DD) of the window on the flows' start time. "
                  "Default: 7 days before end.",
    ))
    end = _date_schema()(django_filters.CharFilter(
        method="filter_window_applied",
        help_text="Last day (UTC, YYYY-MM-DD, inclusive up to 23:59:59.999) of the window on the flows' "
                  "start time. Default: now. A start after the end is a 400.",
    ))
    direction = _choice_schema(["uplink", "downlink"])(django_filters.CharFilter(
        method="filter_direction", help_text="uplink (from the subscriber) or downlink (to the subscriber)."
    ))
    action = _choice_schema(["allow", "drop"])(django_filters.CharFilter(
        method="filter_action", help_text="allow: accepted flows only; drop: dropped flows only; omitted: all."
    ))

    class Meta:
        model = FlowReport
        fields = []

    def filter_queryset(self, queryset):
        start, end = self.window = time_window(self.data)
        return super().filter_queryset(queryset.filter(start_time__range=(start, end)))

    def rollup_dimensions(self):
        """{protocol, direction, action} given, when those are the only filters (besides the window).

        None when a subscriber, source or destination filter applies: the hourly rollup does not keep them.
        Call after the queryset was filtered (so every value was checked).
        """
        data = self.form.cleaned_data
        if any(data.get(name) for name in ("subscriber_id", "source", "destination")):
            return None
        return self._dimensions()

    def endpoint_rollup(self):
        """(dimensions, endpoint, address or None, port or None) when one source or destination filter applies
        and otherwise only protocol, direction, action and the window do: that endpoint's daily rollup can
        count those flows. endpoint is rollups.SOURCE or rollups.DESTINATION.
        """
        data = self.form.cleaned_data
        given = [name for name in ("source", "destination") if data.get(name)]
        if len(given) != 1 or data.get("subscriber_id"):
            return None
        endpoint = rollups.SOURCE if given[0] == "source" else rollups.DESTINATION
        return (self._dimensions(), endpoint, *parse_endpoint(given[0], data[given[0]]))

    def _dimensions(self):
        data = self.form.cleaned_data
        dimensions = {}
        if data.get("protocol"):
            dimensions["protocol"] = int(data["protocol"], 10)
        for name in ("direction", "action"):
            if data.get(name):
                dimensions[name] = data[name]
        return dimensions

    def filter_window_applied(self, queryset, name, value):
        return queryset

    def filter_subscriber_id(self, queryset, name, value):
        if len(value) > 128:
            raise BadParameter(name, "must be at most 128 characters")
        return queryset.filter(subscriber_id=value)

    def filter_protocol(self, queryset, name, value):
        try:
            number = int(value, 10)
        except ValueError:
            raise BadParameter(name, "must be an integer", value) from None
        if not 1 <= number <= 255:
            raise BadParameter(name, "must be between 1 and 255", value)
        return queryset.filter(protocol=number)

    def _endpoint(self, queryset, name, value, prefix):
        address, port = parse_endpoint(name, value)
        condition = Q()
        if address is not None:
            condition &= Q(**{f"{prefix}_ip": address})
        if port is not None:
            condition &= Q(**{f"{prefix}_port": port})
        return queryset.filter(condition)

    def filter_source(self, queryset, name, value):
        return self._endpoint(queryset, name, value, "source")

    def filter_destination(self, queryset, name, value):
        return self._endpoint(queryset, name, value, "destination")

    def filter_direction(self, queryset, name, value):
        if value not in ("uplink", "downlink"):
            raise BadParameter(name, "must be one of uplink, downlink", value)
        return queryset.filter(direction=value)

    def filter_action(self, queryset, name, value):
        if value not in ("allow", "drop"):
            raise BadParameter(name, "must be one of allow, drop", value)
        return queryset.filter(action=value)
