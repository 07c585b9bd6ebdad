"""Demo data of the shared app: a few audit events and API keys a newcomer can look at."""

import datetime as dt

from vpnmonitor.models import ApiKey, AuditEvent


def has_data():
    return AuditEvent.objects.filter(user="demo").exists()


def seed(*, now, options):
    events = [
        AuditEvent(created_at=now - dt.timedelta(hours=h), user="demo", action=action, target=target,
                   details={"days": days} if days else {}, client_address="192.0.2.10")
        for h, action, target, days in [
            (30, "retention.update", "flowreports", 14),
            (20, "proxylogs.clear_old", "proxy_logs", None),
            (2, "retention.update", "proxy_logs", 30),
        ]
    ]
    AuditEvent.objects.bulk_create(events)
    if not ApiKey.objects.filter(name="demo-viewer").exists():
        ApiKey.issue("demo-viewer", ApiKey.Role.VIEWER)
    return f"{len(events)} audit events, 1 viewer API key"
