"""Dashboard pages (login required): the overview at /, a VPN client, flows and the proxy."""

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("dashboard/vpn/<path:common_name>/", views.vpn_client, name="vpn-client"),
    path("dashboard/flows/", views.flows, name="flows"),
    path("dashboard/proxy/", views.proxy, name="proxy"),
    # Browsers ask every site for /favicon.ico; answer with ours rather than a 404 in their console.
    path("favicon.ico", views.favicon, name="favicon"),
]
