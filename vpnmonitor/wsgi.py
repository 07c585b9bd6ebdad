"""WSGI entry point (gunicorn vpnmonitor.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmonitor.settings")
application = get_wsgi_application()
