"""The beat schedule, in one place. Rows are created in django-celery-beat's tables on
migrate when missing, so intervals an admin changed are kept across deploys.

`expires` drops a queued run when workers fall behind, instead of piling runs up.
"""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

SCHEDULE = {
    "poll-openvpn": {
        "task": "monitoring.tasks.poll_openvpn_servers",
        "every_seconds": 10,
        "expires": 9,
        "description": "Read every enabled OpenVPN server (one task per server, locked per server).",
    },
    "rollup-openvpn-usage": {
        "task": "monitoring.tasks.rollup_usage",
        "every_seconds": 300,
        "expires": 280,
        "description": "Roll raw OpenVPN samples up into stats_hourly, stats_6h and stats_daily.",
    },
    "scan-certificates": {
        "task": "monitoring.tasks.scan_certificates",
        "every_seconds": 86400,
        "expires": 3600,
        "description": "Read certificate expiry and revocation from each server's PKI.",
    },
    "apply-retention": {
        "task": "vpnmonitor.tasks.apply_retention",
        "every_seconds": 3600,
        "expires": 3000,
        "description": "Prune every dataset past its retention policy.",
    },
    "create-partitions": {
        "task": "vpnmonitor.tasks.create_partitions",
        "every_seconds": 3600,
        "expires": 3000,
        "description": "Make the next days' partitions of the tables partitioned by day, and index the days that "
                       "are over (PostgreSQL).",
    },
    "seal-flow-destination-hours": {
        "task": "flowreports.tasks.seal_destination_hours",
        "every_seconds": 600,
        "expires": 550,
        "description": "Count each closed hour of flows into the hourly destination rollup that stats read.",
    },
    "tail-proxy-logs": {
        "task": "proxylogs.tasks.tail_proxy_logs",
        "every_seconds": 30,
        "expires": 25,
        "description": "Import new lines of every enabled Squid access log (proxylogs LogSource).",
    },
}


def ensure_periodic_tasks(schedule=None):
    """Create the PeriodicTask rows that do not exist yet; leave existing ones alone."""
    created = []
    for name, entry in (schedule or SCHEDULE).items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=entry["every_seconds"], period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=name, task=entry["task"], interval=interval,
            expire_seconds=entry.get("expires"), description=entry.get("description", ""),
        )
        created.append(name)
    return created
