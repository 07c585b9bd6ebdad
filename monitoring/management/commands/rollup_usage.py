"""manage.py rollup_usage: bring stats_hourly, stats_6h and stats_daily up to date."""

from django.core.management.base import BaseCommand

from monitoring import services


class Command(BaseCommand):
    help = "Roll raw OpenVPN samples up (incremental; running it again gives the same numbers)."

    def handle(self, *args, **options):
        for table, rows in services.rollup_all().items():
            self.stdout.write(f"{table}: {rows} rows written")
