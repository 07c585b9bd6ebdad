"""URL routes of the proxylogs API."""

from django.urls import path

from proxylogs.api import views

urlpatterns = [
    path("api/logs", views.LogListView.as_view(), name="proxylogs-logs"),
    path("api/logs/stats", views.LogStatsView.as_view(), name="proxylogs-stats"),
    path("api/logs/timeline", views.LogTimelineView.as_view(), name="proxylogs-timeline"),
    path("api/logs/clear", views.ClearLogsView.as_view(), name="proxylogs-clear"),
    path("api/logs/clear-old", views.ClearOldLogsView.as_view(), name="proxylogs-clear-old"),
    path("api/security/score", views.SecurityScoreView.as_view(), name="proxylogs-security-score"),
    path("api/dashboard/summary", views.DashboardSummaryView.as_view(), name="proxylogs-dashboard"),
    path("api/traffic/statistics", views.TrafficStatisticsView.as_view(), name="proxylogs-traffic"),
    path("api/clients/statistics", views.ClientsStatisticsView.as_view(), name="proxylogs-clients"),
    path("api/clients/<str:ip>/details", views.ClientDetailsView.as_view(), name="proxylogs-client-details"),
    path("api/domains/statistics", views.DomainsStatisticsView.as_view(), name="proxylogs-domains"),
    path("api/analytics/shadow-it", views.ShadowItView.as_view(), name="proxylogs-shadow-it"),
    path("api/analytics/user-agents", views.UserAgentsView.as_view(), name="proxylogs-user-agents"),
    path("api/analytics/file-extensions", views.FileExtensionsView.as_view(), name="proxylogs-file-extensions"),
    path("api/analytics/top-domains", views.TopDomainsView.as_view(), name="proxylogs-top-domains"),
    path("api/waf/stats", views.WafStatsView.as_view(), name="proxylogs-waf-stats"),
    path("api/waf/categories", views.WafCategoriesView.as_view(), name="proxylogs-waf-categories"),
    path("api/audit-log", views.AuditLogView.as_view(), name="proxylogs-audit-log"),
]
