"""manage.py seed_demo: realistic demo data across every app, sized by flags."""

import importlib
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

LOCAL_APPS = ("vpnmonitor", "monitoring", "flowreports", "proxylogs", "proxytraffic")


class Command(BaseCommand):
    help = "Load demo data into every app (each app's demo.seed())."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=12, help="VPN clients")
        parser.add_argument("--days", type=int, default=7, help="days of history")
        parser.add_argument("--flows", type=int, default=20000, help="flow records")
        parser.add_argument("--log-lines", type=int, default=20000, help="proxy log lines")
        parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when demo data exists")

    def handle(self, *args, **options):
        modules = []
        for app in LOCAL_APPS:
            if app not in settings.INSTALLED_APPS:
                continue
            try:
                modules.append((app, importlib.import_module(f"{app}.demo")))
            except ModuleNotFoundError as exc:
                if exc.name != f"{app}.demo":
                    raise
        if options["if_empty"] and any(getattr(m, "has_data", lambda: False)() for _, m in modules):
            self.stdout.write("Demo data already present; nothing to do.")
            return
        now = timezone.now()
        for app, module in modules:
            started = time.monotonic()
            summary = module.seed(now=now, options=options)
            self.stdout.write(f"{app}: {summary} ({time.monotonic() - started:.1f} s)")
