"""vpnmonitor: the project package and the shared app (retention, privacy, audit, API core)."""

from vpnmonitor.celery import app as celery_app

__all__ = ["celery_app"]
