"""The Celery app: Redis broker when REDIS_URL is set, the embedded file-system broker otherwise."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmonitor.settings")

app = Celery("vpnmonitor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
