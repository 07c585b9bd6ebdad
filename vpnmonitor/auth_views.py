"""Sign-in, token refresh and liveness in the shapes secure-proxy-manager's web UI expects.

POST /api/auth/login and /api/auth/refresh issue the same simplejwt tokens as /api/auth/token, and both sign-ins
check the password with check_credentials; GET /api/health answers without credentials.
"""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from vpnmonitor.api import families
from vpnmonitor.credentials import check_credentials
from vpnmonitor.views import check_services

TAG = ["auth"]

TOKENS = inline_serializer("LoginTokens", {
    "status": serializers.CharField(default="success"),
    "access_token": serializers.CharField(help_text="JWT; send as 'Authorization: Bearer <access_token>'"),
    "refresh_token": serializers.CharField(help_text="JWT for POST /api/auth/refresh"),
    "token_type": serializers.CharField(default="Bearer"),
})
ERROR = inline_serializer("LoginError", {"status": serializers.CharField(default="error"),
                                         "detail": serializers.CharField()})


@extend_schema_serializer(component_name="TokenObtainPair")
class CheckedTokenObtainPairSerializer(TokenObtainPairSerializer):
    """simplejwt's token pair (/api/auth/token), with the password checked and audited by check_credentials."""

    def validate(self, attrs):
        user = check_credentials(self.context["request"], attrs[self.username_field], attrs["password"])
        if user is None:
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        refresh = self.get_token(user)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


def _tokens(refresh, access):
    return Response({"status": "success", "access_token": str(access), "refresh_token": str(refresh),
                     "token_type": "Bearer"})


def _string_fields(request, *names):
    """The named non-empty string fields of a JSON object body; a 400 otherwise."""
    data = request.data
    if not isinstance(data, dict):
        raise exceptions.ParseError("invalid request body")
    values = [data.get(name) for name in names]
    if not all(isinstance(value, str) and value for value in values):
        raise exceptions.ValidationError(" and ".join(names) + " required")
    return values


class TokenIssueView(APIView):
    """Anyone may call; a stale Authorization header is ignored rather than refused."""

    api_family = families.TOKEN_AUTH
    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


class LoginView(TokenIssueView):
    @extend_schema(
        tags=TAG, summary="Sign in with a user name and password (secure-proxy-manager's login)",
        description="Audited; a wrong password is a 401, too many calls a 429 with Retry-After.",
        request=inline_serializer("LoginRequest", {"username": serializers.CharField(),
                                                   "password": serializers.CharField()}),
        responses={200: TOKENS, 400: ERROR, 401: ERROR, 429: ERROR}, auth=[],
    )
    def post(self, request):
        username, password = _string_fields(request, "username", "password")
        user = check_credentials(request, username, password)
        if user is None:
            raise exceptions.AuthenticationFailed("incorrect username or password")
        refresh = TokenObtainPairSerializer.get_token(user)
        return _tokens(refresh, refresh.access_token)


class RefreshView(TokenIssueView):
    @extend_schema(
        tags=TAG, summary="A new access token for a refresh token",
        description="The refresh token stays valid until it expires (JWT_REFRESH_DAYS) and is returned as given.",
        request=inline_serializer("RefreshRequest", {"refresh_token": serializers.CharField()}),
        responses={200: TOKENS, 400: ERROR, 401: ERROR, 429: ERROR}, auth=[],
    )
    def post(self, request):
        (token,) = _string_fields(request, "refresh_token")
        serializer = TokenRefreshSerializer(data={"refresh": token})
        try:
            serializer.is_valid(raise_exception=True)
        except (TokenError, ObjectDoesNotExist, exceptions.ValidationError, exceptions.AuthenticationFailed):
            # Malformed, expired, not a refresh token, or its user is gone or inactive.
            raise exceptions.AuthenticationFailed("invalid or expired refresh token") from None
        return _tokens(serializer.validated_data.get("refresh", token), serializer.validated_data["access"])


class LivenessView(APIView):
    """GET /api/health: {"status": "healthy", "version", "runtime"}; 503 "unhealthy" when the database or
    Redis fails (the same checks as /api/v1/health)."""

    api_family = families.TOKEN_AUTH
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=TAG, summary="Liveness for secure-proxy-manager's web UI (no authentication)", auth=[],
        responses={code: inline_serializer(name, {
            "status": serializers.CharField(), "version": serializers.CharField(),
            "runtime": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField()),
        }) for code, name in ((200, "Liveness"), (503, "LivenessFailed"))},
    )
    def get(self, request):
        checks = check_services()
        healthy = all(value == "ok" for value in checks.values())
        return Response({"status": "healthy" if healthy else "unhealthy",
                         "version": settings.SPECTACULAR_SETTINGS["VERSION"], "runtime": "python", "checks": checks},
                        status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)
