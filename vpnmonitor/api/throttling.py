"""Per-caller throttling through the Django cache (Redis when configured)."""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from vpnmonitor.api.principals import throttle_identity


class PrincipalRateThrottle(SimpleRateThrottle):
    """One bucket per user, API key or OAuth client (per address when anonymous).

    A view picks its rate with `throttle_scope` (a key of DEFAULT_THROTTLE_RATES).
    """

    def __init__(self):
        # The scope is read per view in allow_request, not at construction.
        pass

    def allow_request(self, request, view):
        self.scope = getattr(view, "throttle_scope", "default")
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self):
        # Read live (not the class attribute fixed at import) so settings changes take effect.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}") from None

    def get_cache_key(self, request, view):
        ident = throttle_identity(request) or f"addr:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"


class FullWindowRateThrottle(PrincipalRateThrottle):
    """Tells a throttled client to come back after the whole window (e.g. Retry-After: 60)."""

    def wait(self):
        return self.duration
