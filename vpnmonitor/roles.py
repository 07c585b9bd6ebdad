"""The three roles as Django groups, so admins grant them to users like any group."""

GROUPS = {
    "viewers": [],
    "operators": ["operate", "ingest"],
    "ingest": ["ingest"],
    "unmasked-ip": ["view_unmasked_ip"],
}


def ensure_groups():
    from django.contrib.auth.models import Group, Permission

    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="vpnmonitor", codename__in=codenames)
        group.permissions.add(*perms)
