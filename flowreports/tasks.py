"""Celery tasks of the flow reports app (thin wrappers around the rollups)."""

from celery import shared_task

from flowreports import rollups
from vpnmonitor.jobs import exclusive


@shared_task(name="flowreports.tasks.seal_destination_hours")
def seal_destination_hours():
    """Count the closed hours not sealed yet into the hourly destination rollup; returns how many."""
    with exclusive("seal_destination_hours") as acquired:
        if not acquired:
            return {"skipped": "another seal_destination_hours is running"}
        return {"sealed": rollups.seal_hours()}
