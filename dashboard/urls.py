"""Dashboard pages (login required): the overview at /, a VPN client, flows and the proxy."""

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("dashboard/vpn/<path:common_name>/", views.vpn_client, name="vpn-client"),
    path("dashboard/flows/", views.flows, name="flows"),
    path("dashboard/proxy/", views.proxy, name="proxy"),
]
