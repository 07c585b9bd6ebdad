"""Strict query-parameter parsing: a bad value is a BadParameter (400) naming it, never a fallback."""

import copy
import datetime as dt

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from vpnmonitor.addresses import canonical_ip
from vpnmonitor.api.exceptions import BadParameter


def parse_datetime_value(value, *, instant_only=False):
    """Parse an ISO 8601 date or date-time; naive values are UTC. Raises ValueError."""
    text = value.strip()
    if instant_only:
        # ISO_INSTANT: a full date-time in UTC with a 'Z' (or an explicit offset).
        if "T" not in text or not (text.endswith("Z") or text[-6] in "+-"):
            raise ValueError("expected an ISO 8601 instant such as 2022-11-08T14:53:43Z")
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    if len(text) == 10:
        parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
    else:
        parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


class QueryParameter(OpenApiParameter):
    """A query parameter declared once: it is the OpenAPI entry (give it to extend_schema's parameters) and it
    reads the value (read(), strictly, through QueryParams), so what is documented is what is enforced."""

    def __init__(self, name, schema, reader, **openapi):
        super().__init__(name, schema, OpenApiParameter.QUERY, **openapi)
        self._reader = reader

    def described(self, description):
        """The same parameter with another description (for an endpoint where it means a little more)."""
        parameter = copy.copy(self)
        parameter.description = description
        return parameter

    def read(self, request, **default):
        """The value of a request (or a QueryParams); default=... replaces the declared default (for one that
        depends on the time of the request)."""
        params = request if isinstance(request, QueryParams) else QueryParams(request)
        return self._reader(params, self.name, **default)


def int_parameter(name, minimum, maximum, default, description, *, summary=True, int_format=None, required=False):
    """An integer from minimum to maximum (QueryParams.int): the bounds documented are the ones that give a 400
    outside them. summary adds them to the description."""
    schema = {"type": "integer", **({"format": int_format} if int_format else {}),
              "minimum": minimum, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    if summary:
        description = f"{description} ({minimum}..{maximum}, default {default})."

    def read(params, name, default=default):
        return params.int(name, default, minimum=minimum, maximum=maximum, required=required)

    return QueryParameter(name, schema, read, description=description, required=required)


def choice_parameter(name, choices, default=None, description=""):
    """One of choices (QueryParams.choice)."""
    choices = tuple(choices)

    def read(params, name, default=default):
        return params.choice(name, choices, default)

    return QueryParameter(name, OpenApiTypes.STR, read, enum=list(choices), default=default, description=description)


def string_parameter(name, description="", *, max_length=200, schema=OpenApiTypes.STR, required=False, **openapi):
    """Text of at most max_length characters (QueryParams.string)."""

    def read(params, name, default=None):
        if required and not params.present(name):
            raise BadParameter(name, "is required")
        return params.string(name, default, max_length=max_length)

    return QueryParameter(name, schema, read, description=description, required=required, **openapi)


def bool_parameter(name, default=False, description=""):
    """true/false (also 1/0, yes/no: QueryParams.bool)."""

    def read(params, name, default=default):
        return params.bool(name, default)

    return QueryParameter(name, OpenApiTypes.BOOL, read, default=default, description=description)


def datetime_parameter(name, description="", *, instant_only=False, required=False, schema=OpenApiTypes.DATETIME):
    """An ISO 8601 date-time (QueryParams.datetime); a default that depends on the time is given to read()."""

    def read(params, name, default=None):
        return params.datetime(name, default, instant_only=instant_only, required=required)

    return QueryParameter(name, schema, read, description=description, required=required)


class QueryParams:
    """Typed access to request.query_params."""

    def __init__(self, request):
        self.query = request.query_params

    def raw(self, name):
        value = self.query.get(name)
        return None if value is None else value

    def present(self, name):
        return self.query.get(name) not in (None, "")

    def string(self, name, default=None, *, max_length=200):
        value = self.query.get(name)
        if value in (None, ""):
            return default
        if len(value) > max_length:
            raise BadParameter(name, f"must be at most {max_length} characters")
        if "\x00" in value:
            raise BadParameter(name, "must not contain NUL characters")
        return value

    def int(self, name, default=None, *, minimum=None, maximum=None, required=False):
        value = self.query.get(name)
        if value in (None, ""):
            if required:
                raise BadParameter(name, "is required")
            return default
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise BadParameter(name, "must be an integer", value) from None
        if minimum is not None and maximum is not None and not minimum <= number <= maximum:
            raise BadParameter(name, f"must be between {minimum} and {maximum}", value)
        if minimum is not None and number < minimum:
            raise BadParameter(name, f"must be at least {minimum}", value)
        if maximum is not None and number > maximum:
            raise BadParameter(name, f"must be at most {maximum}", value)
        return number

    def choice(self, name, choices, default=None):
        value = self.query.get(name)
        if value in (None, ""):
            return default
        if value not in choices:
            raise BadParameter(name, "must be one of " + ", ".join(choices), value)
        return value

    def bool(self, name, default=False):
        value = self.query.get(name)
        if value in (None, ""):
            return default
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise BadParameter(name, "must be true or false", value)

    def datetime(self, name, default=None, *, instant_only=False, required=False):
        value = self.query.get(name)
        if value in (None, ""):
            if required:
                raise BadParameter(name, "is required")
            return default
        try:
            return parse_datetime_value(value, instant_only=instant_only)
        except (ValueError, OverflowError):
            expected = "an ISO 8601 instant such as 2022-11-08T14:53:43Z" if instant_only else (
                "an ISO 8601 date or date-time such as 2026-03-15 or 2026-03-15T10:00:00Z"
            )
            raise BadParameter(name, f"must be {expected}", value) from None

    def date(self, name, default=None):
        value = self.query.get(name)
        if value in (None, ""):
            return default
        try:
            if len(value) != 10:
                raise ValueError
            return dt.date.fromisoformat(value)
        except ValueError:
            raise BadParameter(name, "must be a date in the form YYYY-MM-DD", value) from None

    def ip(self, name, default=None):
        value = self.query.get(name)
        if value in (None, ""):
            return default
        try:
            return canonical_ip(value.strip())
        except ValueError:
            raise BadParameter(name, "must be an IPv4 or IPv6 address", value) from None


def now():
    return timezone.now()
