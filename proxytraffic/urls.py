"""Routes of the proxy analytics API, at the spec's paths (no /api prefix)."""

from django.urls import path

from proxytraffic import views

urlpatterns = [
    path("analytics/ingest", views.IngestView.as_view(), name="traffic-ingest"),
    path("analytics/traffic", views.TrafficChartView.as_view(), name="traffic-chart"),
    path("analytics/requests", views.RequestsChartView.as_view(), name="traffic-requests"),
    path("analytics/concurrency", views.ConcurrencyChartView.as_view(), name="traffic-concurrency"),
    path("analytics/domains", views.DomainsView.as_view(), name="traffic-domains"),
    path("analytics/errors", views.ErrorsView.as_view(), name="traffic-errors"),
    path("analytics/websites", views.WebsitesView.as_view(), name="traffic-websites"),
]
