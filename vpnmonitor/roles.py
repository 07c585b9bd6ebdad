"""The roles as Django groups, so admins grant them to users like any group.

A role is a set of vpnmonitor permissions (the capabilities of vpnmonitor.api.principals); the access
policy (vpnmonitor.api.permissions.POLICY) says which capability each endpoint needs. Superusers hold all.
"""

GROUPS = {
    "viewers": ["read"],
    "operators": ["read", "operate", "ingest"],
    "ingest": ["ingest"],
    "unmasked-ip": ["view_unmasked_ip"],
}


def ensure_groups():
    from django.contrib.auth.models import Group, Permission

    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="vpnmonitor", codename__in=codenames)
        group.permissions.add(*perms)
