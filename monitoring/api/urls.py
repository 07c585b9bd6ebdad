"""URL routes of the OpenVPN monitor API."""

from django.urls import path

from monitoring.api import sessions, views
from vpnmonitor.views import HealthView

urlpatterns = [
    path("api/v1/analytics", views.AnalyticsView.as_view(), name="vpn-analytics"),
    path("api/v1/stats", views.StatsView.as_view(), name="vpn-stats"),
    path("api/v1/stats/system", views.SystemStatsView.as_view(), name="vpn-system-stats"),
    path("api/v1/stats/<str:common_name>", views.ClientStatsView.as_view(), name="vpn-client-stats"),
    path("api/v1/clients", views.ClientsView.as_view(), name="vpn-clients"),
    path("api/v1/certificates", views.CertificatesView.as_view(), name="vpn-certificates"),
    path("health", HealthView.as_view(), name="vpn-health-short"),
    path("api/beta/sessions", sessions.SessionsView.as_view(), name="vpn-sessions"),
    path("api/v1/sessions", sessions.SessionsV1View.as_view(), name="vpn-sessions-v1"),
    path("api/beta/oauth/token", sessions.OAuthTokenView.as_view(), name="oauth-token"),
    path("api/v1/oauth/token", sessions.OAuthTokenView.as_view(), name="oauth-token-v1"),
]
