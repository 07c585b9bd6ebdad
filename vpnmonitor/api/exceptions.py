"""One exception handler: every error comes out in its API family's shape with a message."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from vpnmonitor.api import families


class BadParameter(exceptions.ValidationError):
    """A query parameter with a bad value; the message names the parameter."""

    def __init__(self, name, problem, value=None):
        shown = "" if value is None else f" (got {str(value)[:100]!r})"
        self.message = f"Invalid value for '{name}': {problem}{shown}."
        self.parameter = name
        super().__init__({name: [f"{problem}{shown}"]})


class BrokerUnavailable(exceptions.APIException):
    """A write that must hand work to Celery while the broker (Redis) cannot be reached."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task broker is unavailable; try again later."
    default_code = "broker_unavailable"


def _broker_errors():
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return OperationalError, RedisConnectionError, RedisTimeoutError


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def flatten_errors(detail, prefix=""):
    """Turn DRF's nested error detail into 'field: message' strings (items as [index].field)."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif isinstance(key, int) or str(key).isdigit():
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten_errors(value, name))
        return out
    if isinstance(detail, list):
        if detail and all(isinstance(item, (dict, list)) or item is None for item in detail):
            out = []
            for index, item in enumerate(detail):
                if item:
                    out.extend(flatten_errors(item, f"{prefix}[{index}]"))
            return out
        return [f"{prefix}: {item}" if prefix else str(item) for item in detail]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def _message(exc):
    if isinstance(exc, BadParameter):
        return exc.message
    detail = exc.detail
    if isinstance(detail, (dict, list)):
        parts = flatten_errors(detail)
        return "; ".join(parts[:20]) + (f"; and {len(parts) - 20} more" if len(parts) > 20 else "")
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, _broker_errors()):
        exc = BrokerUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    view = context.get("view")
    request = context.get("request")
    _settle_authentication(request)
    family = getattr(view, "api_family", families.DEFAULT)
    exc = exc if isinstance(exc, exceptions.APIException) else _converted(exc)
    structured = exc.detail if isinstance(exc, exceptions.ValidationError) else None
    if isinstance(exc, BadParameter):
        structured = None
    body = family.error(_message(exc), status=response.status_code, request=request, errors=structured)
    new = Response(body, status=response.status_code)
    for header, value in response.items():
        if header.lower() in {"www-authenticate", "retry-after", "allow"}:
            new[header] = value
    return new


def _settle_authentication(request):
    """Run authentication now if it has not run (a 406 comes before it), so that rendering the error
    (an HTML template reads request.user) meets a bad credential as anonymous instead of raising."""
    if request is None or hasattr(request, "_user"):
        return
    try:
        request.user  # noqa: B018 - evaluated for its side effect
    except exceptions.APIException:
        pass  # DRF has already made the request anonymous


def _converted(exc):
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    return exceptions.APIException(str(exc))
