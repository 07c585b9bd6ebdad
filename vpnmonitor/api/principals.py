"""Who is calling: Django users, API keys and OAuth2 clients, and what each may do."""

from django.contrib.auth.models import AnonymousUser

from vpnmonitor.models import ApiKey


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


class OAuthClientPrincipal(_Principal):
    """request.user for a client-credentials token whose application has no owner."""

    def __init__(self, application):
        self.application = application
        self.username = f"oauth:{application.client_id}"


def api_key_of(request):
    user = getattr(request, "user", None)
    return user.api_key if isinstance(user, ApiKeyPrincipal) else None


def can_read(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    api_key = api_key_of(request)
    return api_key is None or api_key.role in (ApiKey.Role.VIEWER, ApiKey.Role.OPERATOR)


def can_operate(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    api_key = api_key_of(request)
    if api_key is not None:
        return api_key.role == ApiKey.Role.OPERATOR
    return user.has_perm("vpnmonitor.operate")


def can_ingest(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    api_key = api_key_of(request)
    if api_key is not None:
        return api_key.role in (ApiKey.Role.INGEST, ApiKey.Role.OPERATOR)
    return user.has_perm("vpnmonitor.ingest") or user.has_perm("vpnmonitor.operate")


def can_view_unmasked_ip(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or api_key_of(request) is not None:
        return False
    return user.has_perm("vpnmonitor.view_unmasked_ip")


def tenant_of(request):
    """The proxy-analytics user_id a caller is confined to, or None for all tenants."""
    api_key = api_key_of(request)
    return api_key.tenant_user_id if api_key is not None else None


def describe_principal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return "anonymous"
    return str(getattr(user, "username", user)) or "unknown"


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
