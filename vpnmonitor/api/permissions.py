"""The access policy: one table of endpoint × method → capability, enforced for every view (deny by default).

Endpoints are URL names. A method an endpoint does not list is refused (403) unless the view has no
handler for it (then 405). An API key confined to one tenant (proxy-analytics user_id) may only use the
endpoints whose rule ends in "+tenant", which apply its tenant to every row they read or write. Paths under
OWN_ACCESS_CONTROL keep their own checks and are not in the table. Adding an endpoint is one line in POLICY;
the policy test fails for a URL that has no line.
"""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from vpnmonitor.api import principals
from vpnmonitor.api.principals import INGEST, OPERATE, READ

PUBLIC = "public"  # anyone, no credential
TENANT = "+tenant"  # suffix: tenant-confined keys may use this endpoint too (it filters by their tenant)
READ_TENANT, INGEST_TENANT = READ + TENANT, INGEST + TENANT

POLICY = {
    # Health, sign-in and token endpoints, the schema and its docs (no data).
    "health": {"GET": PUBLIC},
    "vpn-health-short": {"GET": PUBLIC},
    "token_obtain_pair": {"POST": PUBLIC},
    "token_refresh": {"POST": PUBLIC},
    "oauth-token": {"POST": PUBLIC},
    "oauth-token-v1": {"POST": PUBLIC},
    "auth-login": {"POST": PUBLIC},
    "auth-refresh": {"POST": PUBLIC},
    "liveness": {"GET": PUBLIC},
    "oauth2_provider:token": {"POST": PUBLIC},
    "oauth2_provider:revoke-token": {"POST": PUBLIC},
    "schema": {"GET": PUBLIC},
    "swagger-ui": {"GET": PUBLIC},
    "dashboard:favicon": {"GET": PUBLIC},
    "api-index": {"GET": READ},
    "metrics": {"GET": READ},
    # OpenVPN monitor and sessions.
    "vpn-analytics": {"GET": READ},
    "vpn-stats": {"GET": READ},
    "vpn-system-stats": {"GET": READ},
    "vpn-client-stats": {"GET": READ},
    "vpn-clients": {"GET": READ},
    "vpn-certificates": {"GET": READ},
    "vpn-sessions": {"GET": READ},
    "vpn-sessions-v1": {"GET": READ},
    # Flow reports.
    "flow-reports": {"GET": READ, "POST": INGEST, "DELETE": OPERATE},
    "flow-reports-stats": {"GET": READ},
    "flow-reports-retention": {"GET": READ, "PUT": OPERATE},
    # Proxy logs.
    "proxylogs-logs": {"GET": READ},
    "proxylogs-stats": {"GET": READ},
    "proxylogs-timeline": {"GET": READ},
    "proxylogs-clear": {"POST": OPERATE},
    "proxylogs-clear-old": {"POST": OPERATE},
    "proxylogs-security-score": {"GET": READ},
    "proxylogs-dashboard": {"GET": READ},
    "proxylogs-traffic": {"GET": READ},
    "proxylogs-clients": {"GET": READ},
    "proxylogs-client-details": {"GET": READ},
    "proxylogs-domains": {"GET": READ},
    "proxylogs-shadow-it": {"GET": READ},
    "proxylogs-user-agents": {"GET": READ},
    "proxylogs-file-extensions": {"GET": READ},
    "proxylogs-top-domains": {"GET": READ},
    "proxylogs-waf-stats": {"GET": READ},
    "proxylogs-waf-categories": {"GET": READ},
    "proxylogs-audit-log": {"GET": READ},
    # Proxy analytics.
    "traffic-ingest": {"POST": INGEST_TENANT},
    "traffic-chart": {"GET": READ_TENANT},
    "traffic-requests": {"GET": READ_TENANT},
    "traffic-concurrency": {"GET": READ_TENANT},
    "traffic-domains": {"GET": READ_TENANT},
    "traffic-errors": {"GET": READ_TENANT},
    "traffic-websites": {"GET": READ_TENANT},
    # Dashboard pages (session sign-in).
    "dashboard:overview": {"GET": READ},
    "dashboard:vpn-client": {"GET": READ},
    "dashboard:flows": {"GET": READ},
    "dashboard:proxy": {"GET": READ},
}

# URL prefixes outside the table, each with access control of its own.
OWN_ACCESS_CONTROL = {
    "/admin/": "Django admin: staff status and model permissions",
    "/accounts/": "sign-in, sign-out and password pages",
    "/api-auth/": "the browsable API's sign-in pages",
    "/static/": "static files",
}

TENANT_MESSAGE = "This key is confined to one tenant's proxy analytics (/analytics/...)."
MESSAGES = {
    READ: "This credential may not read data.",
    OPERATE: "This action needs the operator role.",
    INGEST: "This action needs an ingest or operator credential.",
}


def required_rule(view_name, method):
    """POLICY's rule for method on view_name (PUBLIC, READ, OPERATE, INGEST, with TENANT or not), or None."""
    rules = POLICY.get(view_name)
    if rules is None:
        return None
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        # Describing an endpoint needs what its least demanding method needs.
        if PUBLIC in rules.values():
            return PUBLIC
        return min(rules.values(), key=lambda rule: rule.partition(TENANT)[0] != READ)
    return rules.get(method)


def refusal(request, view_name, method):
    """None when POLICY lets this request's caller use method on view_name, else the reason it may not."""
    rule = required_rule(view_name, method)
    if rule is None:
        return "This endpoint is not open to any credential."
    if rule == PUBLIC:
        return None
    capability, tenant_open = rule.removesuffix(TENANT), rule.endswith(TENANT)
    if not principals.has_capability(request, capability):
        return MESSAGES[capability]
    if principals.tenant_of(request) is not None and not tenant_open:
        return TENANT_MESSAGE
    return None


def view_name_of(request):
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else None


class RolePolicy(BasePermission):
    """DRF's permission for every API view: the caller's capabilities against POLICY."""

    message = "This credential may not use this endpoint."

    def has_permission(self, request, view):
        view_name = view_name_of(request)
        handler = getattr(view, request.method.lower(), None)
        if handler is None and request.method.upper() not in ("HEAD", "OPTIONS"):
            return True  # no such method: the view answers 405
        reason = refusal(request, view_name, request.method)
        if reason is not None:
            self.message = reason
        return reason is None


class RolePolicyMiddleware:
    """Applies POLICY to the views that are not DRF views (the dashboard pages), which sign in by session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        from rest_framework.views import APIView

        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None  # RolePolicy decides once DRF has authenticated the caller
        if any(request.path.startswith(prefix) for prefix in OWN_ACCESS_CONTROL):
            return None
        view_name = view_name_of(request)
        if required_rule(view_name, request.method) == PUBLIC:
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        reason = refusal(request, view_name, request.method)
        if reason is not None:
            raise PermissionDenied(reason)
        return None
