"""Sign-in throttling and lockout: the one guard that every password and client-secret check goes through.

Policy, counted separately per source address (IPv6 per /64) and per user name (or OAuth client id),
whatever address it comes from. Failures count until LOGIN_LOCKOUT_SECONDS (15 minutes) pass without one:

- FREE_FAILURES (3) failures cost nothing more; after each further one, attempts are refused for
  1, 4, 16, then LOGIN_BACKOFF_MAX_SECONDS (60) seconds, so a person who mistypes is not held up
  and a guesser, or a flood of bad sign-ins, gets one password check a minute;
- after LOGIN_LOCKOUT_FAILURES (20) failures, attempts are refused for LOGIN_LOCKOUT_SECONDS;
- past their free failures, callers take turns: one such check at a time in the whole installation
  (the others are told to come back in a second), so a flood from many addresses hashes on one core.

A refused attempt is answered 429 with Retry-After before any password is hashed or any user is
looked up, so a flood of bad sign-ins costs a cache read each. Every failure writes an AuditEvent
`auth.login_failed`, and every lockout `auth.login_locked` (refused attempts are not written one by one).
The counters live in the Django cache: Redis when configured, shared by every web process.

Wiring a sign-in path:

- Anything that checks a password with django.contrib.auth.authenticate(request, username=...,
  password=...) is guarded already, through GuardedModelBackend (AUTHENTICATION_BACKENDS): HTTP
  Basic, POST /api/auth/token, the admin and site sign-in pages, and any new view built on
  authenticate() or on simplejwt's TokenObtainPairSerializer. Pass the request: without one the
  guard cannot tell the source address and stays out of the way.
- Any other secret check is one call::

      result = logins.guard(request, claimed_name, lambda: check_secret(...), via="body")

  which raises LoginLocked while locked, counts a falsy result as a failure, and returns the result.
  OAuth2 client secrets go through it in GuardedOAuth2Validator (OAUTH2_PROVIDER's validator).
- LoginLocked is a DRF Throttled: in a DRF view it comes out as a 429 in the view's family shape;
  LoginLockedMiddleware answers it for plain Django views (an HTML page to browsers, JSON otherwise).
"""

import base64
import binascii
import hashlib
import ipaddress
import math
import time
import uuid
from types import SimpleNamespace
from urllib.parse import unquote_plus, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.http import JsonResponse
from django.http.request import HttpHeaders
from django.shortcuts import render
from oauth2_provider.oauth2_validators import OAuth2Validator
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from vpnmonitor.addresses import canonical_ip_or_none, unmapped
from vpnmonitor.api import families
from vpnmonitor.models import Actor, audit

FREE_FAILURES = 3


# Held while the password of a caller past its free failures is checked (see guard()).
SUSPECT_CHECK_KEY = "login:suspect-check"


class LoginLocked(exceptions.Throttled):
    default_code = "login_locked"
    messages = {
        "address": "Too many failed sign-in attempts from this address.",
        "username": "Too many failed sign-in attempts for this user name.",
        "busy": "Too many failed sign-in attempts are being checked at once.",
    }

    def __init__(self, wait, scope):
        super().__init__(wait=wait, detail=self.messages[scope])
        self.scope = scope


def client_address(request):
    """The caller's address, as DRF's throttles see it (X-Forwarded-For only behind a trusted proxy)."""
    return BaseThrottle().get_ident(request)


def _address_key(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    ip = unmapped(ip)  # an IPv4 client of a dual-stack socket
    # One IPv6 subscriber holds at least a /64, and could otherwise take a fresh address per attempt.
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def _name_key(name):
    return hashlib.sha256(str(name).strip().casefold().encode()).hexdigest()[:32]


def _lock_key(scope, ident):
    return f"login:lock:{scope}:{ident}"


def _fail_key(scope, ident):
    return f"login:fail:{scope}:{ident}"


class LoginGuard:
    """The counters and locks of one sign-in attempt: a source address and a claimed name."""

    def __init__(self, request, name, via):
        self.request, self.name, self.via = request, str(name), via
        self.address = client_address(request)
        self.idents = {"address": _address_key(self.address), "username": _name_key(self.name)}

    def refuse_if_locked(self):
        """LoginLocked while the address or the name is locked; else True when either is past its free failures."""
        now = time.time()
        keys = {scope: (_lock_key(scope, ident), _fail_key(scope, ident)) for scope, ident in self.idents.items()}
        found = cache.get_many([key for pair in keys.values() for key in pair])
        waits = [
            (until - now, scope) for scope, (lock, _) in keys.items()
            if (until := found.get(lock)) is not None and until > now
        ]
        if waits:
            wait, scope = max(waits, key=lambda found: (found[0], found[1] == "address"))
            raise LoginLocked(math.ceil(wait), scope)
        return any((found.get(fail) or 0) >= FREE_FAILURES for _, fail in keys.values())

    def checked(self, check):
        result = check()
        if not result:
            self.failed()
        return result

    def failed(self):
        now = time.time()
        self._audit("auth.login_failed", {"reason": "bad_credentials", "via": self.via})
        for scope, ident in self.idents.items():
            failures = _count(_fail_key(scope, ident), settings.LOGIN_LOCKOUT_SECONDS)
            if failures >= settings.LOGIN_LOCKOUT_FAILURES:
                seconds = settings.LOGIN_LOCKOUT_SECONDS
                if self._lock(scope, ident, now + seconds, now):
                    self._audit("auth.login_locked", {"via": self.via, "scope": scope, "failures": failures,
                                                 "seconds": seconds})
            elif failures > FREE_FAILURES and (
                seconds := min(4 ** min(failures - FREE_FAILURES - 1, 15), settings.LOGIN_BACKOFF_MAX_SECONDS)
            ):
                self._lock(scope, ident, now + seconds, now)

    @staticmethod
    def _lock(scope, ident, until, now):
        """Refuse attempts until `until` (unless a longer lock holds); True when this lock is new or longer."""
        key = _lock_key(scope, ident)
        current = cache.get(key)
        if current is not None and current >= until:
            return False
        cache.set(key, until, timeout=math.ceil(until - now))
        return True

    def _audit(self, action, details):
        # The caller is anonymous (request.user is not read: during authentication that would authenticate
        # again) and the target is the name that was tried.
        audit(Actor("anonymous", canonical_ip_or_none(self.address)), action, self.name, **details,
              path=_path(self.request)[:200])


def _count(key, seconds):
    """Add one to a counter that lives until `seconds` pass without an addition."""
    if cache.add(key, 1, timeout=seconds):
        return 1
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=seconds)
        return 1
    cache.touch(key, seconds)
    return count


def _path(request):
    return getattr(request, "path", "") or ""


def guard(request, name, check, *, via):
    """check() under the guard: LoginLocked while locked (check not called), a failure when it is falsy."""
    attempt = LoginGuard(request, name, via)
    if not attempt.refuse_if_locked():
        return attempt.checked(check)
    # Past their free failures, callers take turns: one such password check at a time in the whole
    # installation, so that a flood from many addresses keeps at most one core hashing.
    turn = uuid.uuid4().hex
    if not cache.add(SUSPECT_CHECK_KEY, turn, timeout=10):
        raise LoginLocked(1, "busy")
    try:
        return attempt.checked(check)
    finally:
        if cache.get(SUSPECT_CHECK_KEY) == turn:
            cache.delete(SUSPECT_CHECK_KEY)


def _via(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    return "basic" if header[:6].lower() == "basic " else "password"


class GuardedModelBackend(ModelBackend):
    """Django's user/password backend behind the guard (see the module docstring)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        return guard(
            request, username,
            lambda: ModelBackend.authenticate(self, request, username=username, password=password, **kwargs),
            via=_via(request),
        )

    @staticmethod
    def _username_field():
        return get_user_model().USERNAME_FIELD


def _presented_client_id(oauth_request):
    header = oauth_request.headers.get("Authorization", "") or ""
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return unquote_plus(decoded.split(":", 1)[0]), "basic"
    client_id = getattr(oauth_request, "client_id", None)
    return (client_id, "body") if client_id else (None, None)


class GuardedOAuth2Validator(OAuth2Validator):
    """django-oauth-toolkit's validator with every client-secret check behind the guard."""

    def authenticate_client(self, request, *args, **kwargs):
        client_id, via = _presented_client_id(request)
        if client_id is None:
            return super().authenticate_client(request, *args, **kwargs)
        # oauthlib's request carries a copy of the Django request's META as its headers.
        meta = request.headers
        django_like = SimpleNamespace(META=meta, headers=HttpHeaders(meta), path=urlsplit(request.uri or "").path)
        return guard(
            django_like, client_id,
            lambda: OAuth2Validator.authenticate_client(self, request, *args, **kwargs),
            via=f"oauth client {via}",
        )


class LoginLockedMiddleware:
    """Answers LoginLocked from plain Django views (sign-in pages, the OAuth2 token endpoint) with a 429."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, LoginLocked):
            return None
        message = f"{exception.detail}"
        if "text/html" in request.headers.get("Accept", ""):
            response = render(request, "registration/locked.html", {"message": message}, status=429)
        else:
            match = request.resolver_match
            family = getattr(getattr(match.func, "view_class", None), "api_family", families.DEFAULT) \
                if match is not None else families.DEFAULT
            response = JsonResponse(family.error(message, status=429, request=request), status=429)
        response["Retry-After"] = str(exception.wait)
        return response
