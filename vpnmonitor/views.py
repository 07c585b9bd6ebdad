"""Project-level views: the health check, Prometheus metrics and the API index."""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import authentication, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from vpnmonitor import ingestion_health, metrics
from vpnmonitor.api import families
from vpnmonitor.api.permissions import RolePolicy

logger = logging.getLogger(__name__)


def check_services():
    """{service: "ok" | "down"} for the database and, when configured, Redis; the reason is only logged (the
    health endpoints answer without authentication, and a database error names host, port and user)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - whatever the cause, the database cannot serve
        logger.warning("health: the database does not answer: %s: %s", exc.__class__.__name__, exc)
        checks["database"] = "down"
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 - whatever the cause, Redis cannot serve
            logger.warning("health: Redis does not answer: %s: %s", exc.__class__.__name__, exc)
            checks["redis"] = "down"
    return checks


HEALTH_FIELDS = {
    "status": serializers.CharField(),
    "checks": serializers.DictField(),
    "details": serializers.DictField(required=False, help_text=(
        "Ingestion health (absent when the database is down): 'ingestion' is ok or degraded; stale and failing "
        "OpenVPN servers, lagging and failing proxy log sources (by name), running and stale flow collectors.")),
}


class HealthView(APIView):
    """GET /api/v1/health — no authentication; 503 names what failed."""

    authentication_classes = []
    api_family = families.MONITOR

    @extend_schema(
        summary="Health check",
        responses={
            200: inline_serializer("Health", HEALTH_FIELDS),
            503: inline_serializer("Unhealthy", HEALTH_FIELDS),
        },
        auth=[],
    )
    def get(self, request):
        checks = check_services()
        healthy = all(value == "ok" for value in checks.values())
        body = {"status": "healthy" if healthy else "unhealthy", "checks": checks}
        if checks["database"] == "ok":
            # Stale or lagging ingestion is a degraded detail, not a 503: the web tier can still serve every
            # API, and a load balancer that took it out of rotation would not make a poll succeed.
            try:
                body["details"] = ingestion_health.health_details(ingestion_health.ingestion_health())
            except DatabaseError as exc:
                logger.warning("ingestion health unavailable: %s", exc)
        return Response(body, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


class MetricsScraper:
    """request.user of a caller that presented METRICS_TOKEN."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    pk = username = "metrics-token"

    def __str__(self):
        return self.username


class MetricsTokenAuthentication(authentication.BaseAuthentication):
    """Authorization: Bearer <METRICS_TOKEN>. Any other bearer token is left to the API's own schemes."""

    def authenticate(self, request):
        token = settings.METRICS_TOKEN
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, presented = header.partition(" ")
        if not token or scheme.lower() != "bearer":
            return None
        if hmac.compare_digest(presented.strip().encode(), token.encode()):
            return MetricsScraper(), None
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="metrics"'


class MetricsTokenOrPublic(BasePermission):
    """METRICS_PUBLIC, or the METRICS_TOKEN bearer; any other caller goes by the access policy."""

    def has_permission(self, request, view):
        return settings.METRICS_PUBLIC or isinstance(request.user, MetricsScraper)


class MetricsNegotiation(BaseContentNegotiation):
    """The body's format follows Accept in the view (Prometheus client rules); errors are JSON whatever it says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsView(APIView):
    """GET /metrics — Prometheus text format (OpenMetrics when the scraper asks for it)."""

    content_negotiation_class = MetricsNegotiation
    renderer_classes = [JSONRenderer]
    authentication_classes = [MetricsTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    permission_classes = [MetricsTokenOrPublic | RolePolicy]
    api_family = families.MONITOR

    @extend_schema(exclude=True)
    def get(self, request):
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)


API_INDEX = [
    ("VPN monitor", "/api/v1/analytics"),
    ("VPN monitor", "/api/v1/stats"),
    ("VPN monitor", "/api/v1/clients"),
    ("VPN monitor", "/api/v1/certificates"),
    ("VPN sessions", "/api/beta/sessions?size=100"),
    ("VPN sessions (CloudConnexa API v1)", "/api/v1/sessions?size=100"),
    ("Flow reports", "/api/v1/flow-reports"),
    ("Flow reports", "/api/v1/flow-reports/stats"),
    ("Proxy logs", "/api/logs"),
    ("Proxy logs", "/api/logs/stats"),
    ("Proxy analytics", "/analytics/domains?from=2026-01-01&to=2026-01-31"),
    ("Health", "/api/v1/health"),
    ("Prometheus metrics", "/metrics"),
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

