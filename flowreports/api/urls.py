"""URL routes of the flowreports API (the paths of the flow reports spec)."""

from django.urls import path

from flowreports.api import views

urlpatterns = [
    path("api/v1/flow-reports", views.FlowReportsView.as_view(), name="flow-reports"),
    path("api/v1/flow-reports/stats", views.FlowReportStatsView.as_view(), name="flow-reports-stats"),
    path("api/v1/flow-reports/retention", views.FlowReportRetentionView.as_view(), name="flow-reports-retention"),
]
