"""Capabilities and the roles that group them, so admins grant them to users like any group.

A capability is the codename of one of vpnmonitor's permissions; a role is a Django group holding a set of
them. The access policy (vpnmonitor.api.permissions.POLICY) says which capability each endpoint needs, the
masking rules (vpnmonitor.privacy) which one shows unmasked addresses. Superusers hold all.
"""

from django.contrib.auth.models import Group, Permission

READ, OPERATE, INGEST, UNMASKED_IP = "read", "operate", "ingest", "view_unmasked_ip"
CAPABILITIES = (READ, OPERATE, INGEST, UNMASKED_IP)

GROUPS = {
    "viewers": [READ],
    "operators": [READ, OPERATE, INGEST],
    "ingest": [INGEST],
    "unmasked-ip": [UNMASKED_IP],
}


def capabilities_of(user):
    """The set of capabilities (READ, OPERATE, INGEST, UNMASKED_IP) of a caller (request.user).

    A caller that is not a Django user (an API key, an OAuth2 client) brings its own `capabilities`.
    """
    if user is None or not user.is_authenticated:
        return frozenset()
    own = getattr(user, "capabilities", None)
    if own is not None:
        return own
    if not user.is_active:
        return frozenset()
    return frozenset(c for c in CAPABILITIES if user.has_perm(f"vpnmonitor.{c}"))


def has_capability(request, capability):
    """Whether the caller of a request (Django's or DRF's) holds the capability."""
    return capability in capabilities_of(getattr(request, "user", None))


def ensure_groups():
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="vpnmonitor", codename__in=codenames)
        group.permissions.add(*perms)
