"""The API families: each one's success envelope and error shape, in one place."""

from http import HTTPStatus

from django.utils import timezone


def _reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiFamily:
    """DRF's plain shape, used by the auth and health endpoints."""

    name = "default"

    def ok(self, data, **extra):
        return {**extra, "data": data}

    def error(self, message, *, status, request, errors=None):
        body = {"detail": message}
        if errors is not None:
            body["errors"] = errors
        return body


class MonitorFamily(ApiFamily):
    """OpenVPN monitor: {"success": true, ..., "data": ...}."""

    name = "monitor"

    def ok(self, data, **extra):
        return {"success": True, **extra, "data": data}

    def error(self, message, *, status, request, errors=None):
        body = {"success": False, "error": message}
        if errors is not None:
            body["errors"] = errors
        return body


class SessionsFamily(ApiFamily):
    """VPN sessions: {"sessions": [...], "nextCursor": ...}; errors carry status and message."""

    name = "sessions"

    def ok(self, data, **extra):
        return {"sessions": data, **extra}

    def error(self, message, *, status, request, errors=None):
        body = {"status": status, "error": _reason(status), "message": message}
        if errors is not None:
            body["errors"] = errors
        return body


class FlowReportsFamily(ApiFamily):
    """Flow reports: {"result": ...}; errors {"error": "message"}."""

    name = "flowreports"

    def ok(self, data, **extra):
        return {"result": data, **extra}

    def error(self, message, *, status, request, errors=None):
        body = {"error": message}
        if errors is not None:
            body["errors"] = errors
        return body


class ProxyLogsFamily(ApiFamily):
    """Proxy logs: {"status": "success", "data": ...}; errors {"status": "error", "message"}."""

    name = "proxylogs"

    def ok(self, data, **extra):
        return {"status": "success", "data": data, **extra}

    def error(self, message, *, status, request, errors=None):
        body = {"status": "error", "message": message}
        if errors is not None:
            body["errors"] = errors
        return body


class ProxyAnalyticsFamily(ApiFamily):
    """Proxy analytics: {"data": ...}; errors {"message", "path", "timestamp"}."""

    name = "proxyanalytics"

    def ok(self, data, **extra):
        return {"data": data, **extra}

    def error(self, message, *, status, request, errors=None):
        body = {
            "message": message,
            "path": request.path if request is not None else "",
            "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        }
        if errors is not None:
            body["errors"] = errors
        return body


class TokenAuthFamily(ApiFamily):
    """secure-proxy-manager's sign-in and health: errors {"status": "error", "detail": msg}."""

    name = "tokenauth"

    def ok(self, data, **extra):
        return {"status": "success", **extra, "data": data}

    def error(self, message, *, status, request, errors=None):
        return {"status": "error", "detail": message}


DEFAULT = ApiFamily()
MONITOR = MonitorFamily()
SESSIONS = SessionsFamily()
FLOW_REPORTS = FlowReportsFamily()
PROXY_LOGS = ProxyLogsFamily()
PROXY_ANALYTICS = ProxyAnalyticsFamily()
TOKEN_AUTH = TokenAuthFamily()
