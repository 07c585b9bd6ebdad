"""Who is calling (Django users, API keys, OAuth2 clients) and which capabilities that gives them."""

from django.contrib.auth.models import AnonymousUser, Permission
from django.db.models import Q

from vpnmonitor.models import Actor, ApiKey, describe_actor
from vpnmonitor.roles import CAPABILITIES, INGEST, OPERATE, READ, UNMASKED_IP, has_capability

# What an API key of each role may do (keys never see unmasked addresses).
KEY_ROLE_CAPABILITIES = {
    ApiKey.Role.VIEWER: frozenset({READ}),
    ApiKey.Role.OPERATOR: frozenset({READ, OPERATE, INGEST}),
    ApiKey.Role.INGEST: frozenset({INGEST}),
}

# What an OAuth2 token's scopes allow; the token gets the part its application's owner also holds.
SCOPE_CAPABILITIES = {
    "read": frozenset({READ, UNMASKED_IP}),
    "write": frozenset({OPERATE}),
    "ingest": frozenset({INGEST}),
}


class _Principal(AnonymousUser):
    """An authenticated caller that is not a Django user: no permissions of its own."""

    username = ""

    @property
    def is_anonymous(self):
        return False

    @property
    def is_authenticated(self):
        return True

    def __str__(self):
        return self.username


class ApiKeyPrincipal(_Principal):
    """request.user for a call made with an X-API-Key."""

    def __init__(self, api_key):
        self.api_key = api_key
        self.username = f"apikey:{api_key.name}"

    @property
    def capabilities(self):
        return KEY_ROLE_CAPABILITIES.get(self.api_key.role, frozenset())


class OAuthClientPrincipal(_Principal):
    """request.user for an OAuth2 client-credentials token: its scopes within its application's role.

    The application's role is what its owner holds through groups or explicit permissions; the owner's
    superuser status gives a token nothing, and an application without an owner has no role.
    """

    def __init__(self, application, scopes=()):
        self.application = application
        self.scopes = frozenset(scopes)
        self.username = f"oauth:{application.client_id}"
        self._capabilities = None

    @property
    def capabilities(self):
        if self._capabilities is None:
            allowed = frozenset().union(*(SCOPE_CAPABILITIES.get(scope, ()) for scope in self.scopes))
            self._capabilities = allowed & application_role(self.application)
        return self._capabilities


def application_role(application):
    """The capabilities an OAuth2 application's owner holds explicitly (superuser status not counted)."""
    owner = application.user
    if owner is None or not owner.is_active:
        return frozenset()
    held = Permission.objects.filter(
        Q(user=owner) | Q(group__user=owner), content_type__app_label="vpnmonitor", codename__in=CAPABILITIES,
    ).values_list("codename", flat=True)
    return frozenset(held)


def api_key_of(request):
    user = getattr(request, "user", None)
    return user.api_key if isinstance(user, ApiKeyPrincipal) else None


def can_read(request):
    return has_capability(request, READ)


def can_operate(request):
    return has_capability(request, OPERATE)


def can_ingest(request):
    return has_capability(request, INGEST)


def tenant_of(request):
    """The proxy-analytics user_id a caller is confined to, or None for all tenants."""
    api_key = api_key_of(request)
    return api_key.tenant_user_id if api_key is not None else None


def request_actor(request):
    """Who made an HTTP request (Django's or DRF's), for audit(): its caller and client address."""
    if request is None:
        return None
    return Actor(describe_actor(getattr(request, "user", None)), request.META.get("REMOTE_ADDR") or None)


def throttle_identity(request):
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        api_key = api_key_of(request)
        if api_key is not None:
            return f"key:{api_key.pk}"
        if isinstance(user, OAuthClientPrincipal):
            return f"oauth:{user.application.pk}"
        return f"user:{user.pk}"
    return None
