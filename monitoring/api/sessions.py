"""The VPN sessions API (/api/beta/sessions) and its OAuth2 token endpoint."""

import datetime as dt
import json

from django.http import JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from oauth2_provider.views import TokenView
from rest_framework import generics, serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from monitoring import selectors
from monitoring.models import VpnSession
from vpnmonitor.api import families, parsers
from vpnmonitor.api.exceptions import BadParameter, flatten_errors
from vpnmonitor.api.fields import MaskedIPField
from vpnmonitor.api.pagination import SignedKeysetPagination
from vpnmonitor.api.params import QueryParams, bool_parameter, choice_parameter, datetime_parameter
from vpnmonitor.api.throttling import FullWindowRateThrottle
from vpnmonitor.privacy import should_mask

HISTORY = dt.timedelta(days=7)


def _instant(moment):
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class SessionValues:
    """How a session's values are read, shared by the beta and v1 session objects: who is behind the common
    name comes from its user profile, and in GDPR mode e-mail and names are left out."""

    def _profile(self, session):
        return self.context["profiles"].get(session.common_name)

    def _personal(self, session, field):
        if should_mask(self.context.get("request")):
            return None
        profile = self._profile(session)
        return (getattr(profile, field) or None) if profile else None

    def get_clientUUID(self, session) -> str | None:  # noqa: N802 - the spec's field names
        return None

    def get_networkId(self, session) -> str | None:  # noqa: N802
        return session.server.network_name or None

    def get_networkName(self, session) -> str | None:  # noqa: N802
        return session.server.network_name or None

    def get_region(self, session) -> str | None:
        return session.server.region or None

    def get_deviceId(self, session) -> str | None:  # noqa: N802
        return session.device_id or None

    def get_deviceName(self, session) -> str | None:  # noqa: N802
        profile = self._profile(session)
        return (profile.device_name or None) if profile else None

    def get_disconnectReason(self, session) -> str | None:  # noqa: N802
        return session.disconnect_reason or None

    def get_email(self, session) -> str | None:
        return self._personal(session, "email")

    def get_firstName(self, session) -> str | None:  # noqa: N802
        return self._personal(session, "first_name")

    def get_lastName(self, session) -> str | None:  # noqa: N802
        return self._personal(session, "last_name")

    def get_userGroup(self, session) -> str | None:  # noqa: N802
        profile = self._profile(session)
        return (profile.user_group or None) if profile else None

    def get_userId(self, session) -> str | None:  # noqa: N802
        profile = self._profile(session)
        return (profile.user_id or None) if profile else None

    def get_userName(self, session) -> str | None:  # noqa: N802
        if should_mask(self.context.get("request")):
            return None
        profile = self._profile(session)
        return (profile.user_name if profile and profile.user_name else session.username or session.common_name) or None

    def get_osType(self, session) -> str | None:  # noqa: N802
        return session.os_type or None

    def get_osVersion(self, session) -> str | None:  # noqa: N802
        return session.os_version or None

    def get_protocol(self, session) -> str | None:
        return session.protocol.upper() or None

    def get_sessionDurationSeconds(self, session) -> int:  # noqa: N802
        end = session.ended_at or self.context["now"]
        return max(0, int((end - session.started_at).total_seconds()))

    def get_sessionStartTime(self, session) -> str | None:  # noqa: N802
        return _instant(session.started_at)

    def get_sessionEndTime(self, session) -> str | None:  # noqa: N802
        return _instant(session.ended_at)


class SessionSerializer(SessionValues, serializers.ModelSerializer):
    """The spec's session object. Unknown values are null."""

    id = serializers.CharField(source="pk")
    bytesIn = serializers.IntegerField(source="bytes_received")
    bytesOut = serializers.IntegerField(source="bytes_sent")
    clientUUID = serializers.SerializerMethodField()
    connectorId = serializers.CharField(source="server_id")
    connectorName = serializers.CharField(source="server.name")
    hostId = serializers.CharField(source="server_id")
    hostName = serializers.CharField(source="server.name")
    networkId = serializers.SerializerMethodField()
    networkName = serializers.SerializerMethodField()
    region = serializers.SerializerMethodField()
    deviceId = serializers.SerializerMethodField()
    deviceName = serializers.SerializerMethodField()
    disconnectReason = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()
    firstName = serializers.SerializerMethodField()
    lastName = serializers.SerializerMethodField()
    userGroup = serializers.SerializerMethodField()
    userId = serializers.SerializerMethodField()
    userName = serializers.SerializerMethodField()
    osType = serializers.SerializerMethodField()
    osVersion = serializers.SerializerMethodField()
    protocol = serializers.SerializerMethodField()
    publicIp = MaskedIPField(source="real_ip")
    sessionDurationSeconds = serializers.SerializerMethodField()
    sessionStartTime = serializers.SerializerMethodField()
    sessionEndTime = serializers.SerializerMethodField()
    tunnelIpV4 = MaskedIPField(source="virtual_address")
    tunnelIpV6 = MaskedIPField(source="virtual_ipv6")

    class Meta:
        model = VpnSession
        fields = [
            "bytesIn", "bytesOut", "clientUUID", "connectorId", "connectorName", "deviceId", "deviceName",
            "disconnectReason", "email", "firstName", "hostId", "hostName", "id", "lastName", "networkId",
            "networkName", "osType", "osVersion", "protocol", "publicIp", "region", "sessionDurationSeconds",
            "sessionEndTime", "sessionStartTime", "status", "tunnelIpV4", "tunnelIpV6", "userGroup", "userId",
            "userName",
        ]


class SessionV1Serializer(SessionValues, serializers.ModelSerializer):
    """CloudConnexa API v1.2.0's session object, as its Go client decodes it. Unknown values are null."""

    sessionId = serializers.CharField(source="pk")
    userId = serializers.SerializerMethodField(method_name="get_userId")
    deviceId = serializers.SerializerMethodField(method_name="get_deviceId")
    regionId = serializers.SerializerMethodField(method_name="get_region")
    bytesIn = serializers.IntegerField(source="bytes_received")
    bytesOut = serializers.IntegerField(source="bytes_sent")
    connectorName = serializers.CharField(source="server.name")
    userName = serializers.SerializerMethodField(method_name="get_userName")
    deviceName = serializers.SerializerMethodField(method_name="get_deviceName")
    clientIp = MaskedIPField(source="real_ip", help_text="Masked in GDPR mode")
    startDateTime = serializers.SerializerMethodField(method_name="get_sessionStartTime")
    vpnIpv4 = MaskedIPField(source="virtual_address", help_text="Masked in GDPR mode")
    networkName = serializers.SerializerMethodField(method_name="get_networkName")
    regionName = serializers.SerializerMethodField(method_name="get_region")
    connectionStatus = serializers.CharField(source="status", help_text="ACTIVE, COMPLETED or FAILED")

    class Meta:
        model = VpnSession
        fields = [
            "sessionId", "userId", "deviceId", "regionId", "bytesIn", "bytesOut", "connectorName", "userName",
            "deviceName", "clientIp", "startDateTime", "vpnIpv4", "networkName", "regionName", "connectionStatus",
        ]


START_DATE = datetime_parameter("startDate", "Inclusive; default now - 1 day.", instant_only=True)
END_DATE = datetime_parameter("endDate", "Exclusive; default now.", instant_only=True)
STATUS = choice_parameter("status", VpnSession.Status.values)
RETURN_ONLY_NEW = bool_parameter("returnOnlyNew", False)
WINDOW_PARAMETERS = [START_DATE, END_DATE, STATUS, RETURN_ONLY_NEW]


class SessionPagination(SignedKeysetPagination):
    max_size = 100


class SessionsView(generics.ListAPIView):
    api_family = families.SESSIONS
    serializer_class = SessionSerializer
    pagination_class = SessionPagination
    throttle_scope = "sessions"
    throttle_classes = [FullWindowRateThrottle]

    def get_cursor_field(self, request):
        return "created_at" if self._params(request)["only_new"] else "updated_at"

    def _params(self, request):
        if not hasattr(self, "_parsed"):
            params = QueryParams(request)
            now = timezone.now()
            start = START_DATE.read(params, default=now - dt.timedelta(days=1))
            end = END_DATE.read(params, default=now)
            if start < now - HISTORY - dt.timedelta(seconds=1):
                raise BadParameter("startDate", "must not be more than 7 days ago", params.raw("startDate"))
            self._parsed = {
                "start": start, "end": end, "now": now,
                "status": STATUS.read(params),
                "only_new": RETURN_ONLY_NEW.read(params),
            }
        return self._parsed

    def get_queryset(self):
        p = self._params(self.request)
        return selectors.sessions_in_window(p["start"], p["end"], status=p["status"], only_new=p["only_new"])

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": self._params(self.request)["now"],
                "profiles": getattr(self, "_profiles", {})}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._profiles = selectors.profiles_for({session.common_name for session in page})
        return page

    @extend_schema(
        summary="List VPN sessions in batches",
        description="Sessions created (returnOnlyNew=true) or updated (false) in [startDate, endDate), oldest "
        "first, with an opaque signed cursor. Max 7 days of history. In GDPR mode publicIp, tunnelIpV4 and "
        "tunnelIpV6 are masked and "
        "email and names are left out unless the caller may see them.",
        parameters=WINDOW_PARAMETERS,
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


TOKEN_REQUEST = inline_serializer("OAuthTokenRequest", {
    "grant_type": serializers.ChoiceField(choices=["client_credentials"]),
    "scope": serializers.CharField(required=False, help_text="read (default), write; 'default' means read"),
    "client_id": serializers.CharField(required=False, help_text="When not sent with HTTP Basic"),
    "client_secret": serializers.CharField(required=False, help_text="When not sent with HTTP Basic"),
})
OAUTH_ERROR = inline_serializer("OAuthError", {"error": serializers.CharField(),
                                               "error_description": serializers.CharField(required=False)})


class SessionsV1View(SessionsView):
    serializer_class = SessionV1Serializer

    @extend_schema(
        summary="List VPN sessions in batches (CloudConnexa API v1.2.0 schema)",
        description="The sessions of /api/beta/sessions, with the same parameters, window rules and signed "
        "cursor, in the v1.2.0 session object (sessionId, userId, ..., connectionStatus). In GDPR mode clientIp "
        "and vpnIpv4 are masked and userName is left out.",
        parameters=WINDOW_PARAMETERS,
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class SessionsTokenView(TokenView):
    """OAuth2 client-credentials token: {access_token, token_type: "bearer", expires_in, scope}."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            body = json.loads(response.content)
            body["token_type"] = body.get("token_type", "bearer").lower()
            response.content = json.dumps(body).encode()
        return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _oauth_error(description):
    return JsonResponse({"error": "invalid_request", "error_description": description}, status=400)


class OAuthTokenView(APIView):
    """POST /api/beta/oauth/token and /api/v1/oauth/token: the client-credentials grant as form data or as a JSON
    object (with or without a Content-Type), the client's id and secret in HTTP Basic or in the body.

    CloudConnexa's clients send scope "default", which is this server's default scope ("read").
    """

    api_family = families.SESSIONS
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="OAuth2 client-credentials token", auth=[],
        description="Send the client id and secret with HTTP Basic (or as client_id and client_secret in the "
        "body). The body is form data or a JSON object.",
        request={
            "application/x-www-form-urlencoded": TOKEN_REQUEST,
            "application/json": TOKEN_REQUEST,
        },
        responses={200: inline_serializer("OAuthToken", {
            "access_token": serializers.CharField(), "token_type": serializers.CharField(default="bearer"),
            "expires_in": serializers.IntegerField(), "scope": serializers.CharField(),
        }), 400: OAUTH_ERROR, 401: OAUTH_ERROR},
    )
    def post(self, request):
        django_request = request._request
        if django_request.content_type in FORM_TYPES:
            try:
                django_request.POST  # noqa: B018 - parse now, to answer a broken form in OAuth's shape
            except MultiPartParserError:
                return _oauth_error("The form data cannot be read.")
        elif django_request.body.strip():
            try:
                fields = parsers.load_json(django_request.body, django_request.content_type)
            except (ParseError, ValidationError) as exc:
                return _oauth_error("; ".join(flatten_errors(exc.detail)))
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                return _oauth_error("The JSON body must be an object of strings.")
            django_request.POST = QueryDict(mutable=True)
            django_request.POST.update(fields)
        if django_request.POST.get("scope") == "default":
            django_request.POST = django_request.POST.copy()
            del django_request.POST["scope"]
        return SessionsTokenView.as_view()(django_request)
