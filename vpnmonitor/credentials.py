"""The one check of a user name and password for the token endpoints, with its audit trail."""

from django.contrib.auth import authenticate

from vpnmonitor.models import audit


def check_credentials(request, username, password):
    """The active user with these credentials, or None. Every attempt is recorded in the audit log.

    `request` is the DRF request of the sign-in call; a caller that limits attempts checks them here, before
    the password is tried.
    """
    user = authenticate(request._request, username=username, password=password)
    if user is None or not user.is_active:
        audit(request, "auth.login_failed", username, reason="bad_credentials")
        return None
    request.user = user  # so the audit event names who signed in
    audit(request, "auth.login", username)
    return user
