"""Authentication classes: JWT, OAuth2 client credentials and X-API-Key (plus DRF's own)."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.contrib.rest_framework import OAuth2Authentication as _OAuth2Authentication
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication

from vpnmonitor.api.principals import ApiKeyPrincipal, OAuthClientPrincipal
from vpnmonitor.models import ApiKey


class JWTAuthentication(_JWTAuthentication):
    """simplejwt, but leaves bearer tokens that are not JWTs to the OAuth2 class."""

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None or raw.count(b".") != 2:
            return None
        return super().authenticate(request)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class OAuth2Authentication(_OAuth2Authentication):
    """django-oauth-toolkit bearer tokens; a token acts as its application, limited by its scopes."""

    def authenticate(self, request):
        # oauthlib reads the whole body; only do that when there is a bearer token to check.
        if not request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer "):
            return None
        result = super().authenticate(request)
        if result is None:
            return None
        _, token = result
        # Never the owner's own user: a token may only do what its scopes allow within its application's role.
        return OAuthClientPrincipal(token.application, token.scope.split()), token


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        plaintext = request.META.get(self.header)
        if not plaintext:
            return None
        api_key = ApiKey.authenticate(plaintext.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return "X-API-Key"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "vpnmonitor.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = "vpnmonitor.api.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class OAuth2Scheme(OpenApiAuthenticationExtension):
    target_class = "vpnmonitor.api.authentication.OAuth2Authentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "flows": {"clientCredentials": {
                "tokenUrl": "/api/beta/oauth/token", "scopes": settings.OAUTH2_PROVIDER["SCOPES"],
            }},
        }
