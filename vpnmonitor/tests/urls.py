"""Small views, one per API family, to test the shared API layer on its own."""

from django.urls import include, path
from rest_framework import generics, serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from vpnmonitor.api import families, pagination, principals
from vpnmonitor.api.fields import MaskedIPField
from vpnmonitor.api.params import QueryParams
from vpnmonitor.api.permissions import MESSAGES
from vpnmonitor.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    client_address = MaskedIPField()

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "target", "client_address", "created_at"]


def needs(capability):
    """These views are not in the access policy's table: each names the capability it asks for."""

    class Needs(BasePermission):
        message = MESSAGES[capability]

        def has_permission(self, request, view):
            return principals.has_capability(request, capability)

    return [Needs]


def listing(family, paginator, **attrs):
    return type(f"{family.name}List", (generics.ListAPIView,), {
        "queryset": AuditEvent.objects.order_by("created_at", "id"),
        "serializer_class": AuditEventSerializer,
        "pagination_class": paginator,
        "api_family": family,
        "permission_classes": needs(principals.READ),
        **attrs,
    }).as_view()


class OperatorAction(APIView):
    api_family = families.FLOW_REPORTS
    permission_classes = needs(principals.OPERATE)

    def post(self, request):
        return Response(families.FLOW_REPORTS.ok({"message": "done"}))


class IngestAction(APIView):
    api_family = families.PROXY_ANALYTICS
    permission_classes = needs(principals.INGEST)

    def post(self, request):
        return Response(status=204)


class MonitorEcho(APIView):
    api_family = families.MONITOR
    permission_classes = needs(principals.READ)

    def get(self, request):
        params = QueryParams(request)
        return Response(families.MONITOR.ok({"hours": params.int("hours", 24, minimum=1, maximum=720)}))


class ThrottledSessions(APIView):
    api_family = families.SESSIONS
    permission_classes = needs(principals.READ)
    throttle_scope = "sessions"

    def get_throttles(self):
        from vpnmonitor.api.throttling import FullWindowRateThrottle

        return [FullWindowRateThrottle()]

    def get(self, request):
        return Response(families.SESSIONS.ok([]))


def broker_write(family):
    """A write that hands a task to the Celery broker, in one family's API."""

    def post(self, request):
        from django.conf import settings

        from vpnmonitor.celery import app

        with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
            app.send_task("vpnmonitor.tasks.apply_retention", connection=connection, retry=False)
        return Response(family.ok({"queued": True}), status=202)

    return type(f"{family.name}BrokerWrite", (APIView,), {
        "api_family": family, "post": post, "permission_classes": needs(principals.OPERATE),
    }).as_view()


urlpatterns = [
    path("", include("vpnmonitor.urls")),
    path("t/flows", listing(families.FLOW_REPORTS, pagination.PagePerPagePagination)),
    path("t/logs", listing(families.PROXY_LOGS, pagination.LimitOffsetPagination)),
    path("t/analytics", listing(families.PROXY_ANALYTICS, pagination.PageLimitPagination)),
    path("t/sessions", listing(families.SESSIONS, pagination.SignedKeysetPagination, cursor_field="created_at")),
    path("t/operate", OperatorAction.as_view()),
    path("t/ingest", IngestAction.as_view()),
    path("t/monitor", MonitorEcho.as_view()),
    path("t/throttled", ThrottledSessions.as_view()),
    *(path(f"t/broker/{family.name}", broker_write(family)) for family in (
        families.MONITOR, families.SESSIONS, families.FLOW_REPORTS, families.PROXY_LOGS, families.PROXY_ANALYTICS)),
]
