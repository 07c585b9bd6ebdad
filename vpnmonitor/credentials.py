"""The one check of a user name and password for the token endpoints, with its audit trail."""

from django.contrib.auth import authenticate

from vpnmonitor.api.principals import request_actor
from vpnmonitor.models import audit


def check_credentials(request, username, password):
    """The active user with these credentials, or None. Every sign-in is recorded in the audit log.

    `request` is the DRF request of the sign-in call. authenticate() goes through the sign-in guard
    (vpnmonitor.logins.GuardedModelBackend), which limits attempts and records each failure.
    """
    user = authenticate(request._request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    request.user = user  # so the audit event names who signed in
    audit(request_actor(request), "auth.login", username)
    return user
