"""Project-level views: the health check and the API index."""

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from vpnmonitor.api import families


def check_services():
    """{service: "ok" | error text} for the database and, when configured, Redis."""
    from django.conf import settings

    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy; the text says which
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    return checks


class HealthView(APIView):
    """GET /api/v1/health — no authentication; 503 names what failed."""

    permission_classes = [AllowAny]
    authentication_classes = []
    api_family = families.MONITOR

    @extend_schema(
        summary="Health check",
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()}),
            503: inline_serializer("Unhealthy", {"status": serializers.CharField(), "checks": serializers.DictField()}),
        },
        auth=[],
    )
    def get(self, request):
        checks = check_services()
        healthy = all(value == "ok" for value in checks.values())
        body = {"status": "healthy" if healthy else "unhealthy", "checks": checks}
        return Response(body, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


API_INDEX = [
    ("VPN monitor", "/api/v1/analytics"),
    ("VPN monitor", "/api/v1/stats"),
    ("VPN monitor", "/api/v1/clients"),
    ("VPN monitor", "/api/v1/certificates"),
    ("VPN sessions", "/api/beta/sessions?size=100"),
    ("Flow reports", "/api/v1/flow-reports"),
    ("Flow reports", "/api/v1/flow-reports/stats"),
    ("Proxy logs", "/api/logs"),
    ("Proxy logs", "/api/logs/stats"),
    ("Proxy analytics", "/analytics/domains?from=2026-01-01&to=2026-01-31"),
    ("Health", "/api/v1/health"),
    ("OpenAPI schema", "/api/schema/"),
    ("Swagger UI", "/api/docs/"),
]


class ApiIndexView(APIView):
    """GET /api/ — where each API family lives (a starting point for the browsable API)."""

    @extend_schema(exclude=True)
    def get(self, request):
        return Response([
            {"api": name, "url": request.build_absolute_uri(path)} for name, path in API_INDEX
        ] + [{"api": "JWT token", "url": reverse("token_obtain_pair", request=request)}])

