"""Celery tasks of the shared app (thin wrappers around services)."""

from celery import shared_task

from vpnmonitor import partitions, retention
from vpnmonitor.jobs import exclusive


@shared_task(name="vpnmonitor.tasks.apply_retention")
def apply_retention():
    """Prune every dataset by its RetentionPolicy; returns rows deleted per dataset."""
    with exclusive("apply_retention") as acquired:
        if not acquired:
            return {"skipped": "another apply_retention is running"}
        return retention.prune_all()


@shared_task(name="vpnmonitor.tasks.create_partitions")
def create_partitions():
    """Make today's and the next days' partitions of every table partitioned by day, and the closed-day indexes of
    the days that are over; returns how many tables and indexes."""
    return {"tables": partitions.create_ahead(), "indexes": partitions.index_closed()}
