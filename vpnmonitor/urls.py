"""Root URL configuration: each API family at its documented path."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from oauth2_provider import views as oauth_views
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from vpnmonitor import auth_views, views

urlpatterns = [
    path("", include("dashboard.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", views.ApiIndexView.as_view(), name="api-index"),
    path("api/v1/health", views.HealthView.as_view(), name="health"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    path("api/auth/token", TokenObtainPairView.as_view(serializer_class=auth_views.CheckedTokenObtainPairSerializer),
         name="token_obtain_pair"),
    path("api/auth/token/refresh", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/login", auth_views.LoginView.as_view(), name="auth-login"),
    path("api/auth/refresh", auth_views.RefreshView.as_view(), name="auth-refresh"),
    path("api/health", auth_views.LivenessView.as_view(), name="liveness"),
    # Only client credentials are offered: django-oauth-toolkit's token and revocation endpoints, without its
    # authorization, device, client-registration and application-management pages (applications are managed
    # in admin, where every change is audited).
    path("o/", include(([
        path("token/", oauth_views.TokenView.as_view(), name="token"),
        path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    ], "oauth2_provider"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("flowreports.api.urls")),
    path("", include("proxylogs.api.urls")),
    path("", include("proxytraffic.urls")),
]
