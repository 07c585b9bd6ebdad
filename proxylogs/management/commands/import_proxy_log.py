"""manage.py import_proxy_log: import a Squid access log in constant memory, resuming where the last run stopped."""

import os
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from proxylogs import services
from proxylogs.models import LogSource


class Command(BaseCommand):
    help = (
        "Import a Squid access log (native squid format by default). The file's position is kept in a "
        "LogSource (created disabled if none names this path), so running it again imports only new lines."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the access log file")
        parser.add_argument("--format", choices=[choice.value for choice in LogSource.Format],
                            help="log format (default: the LogSource's, else squid)")
        parser.add_argument("--follow", action="store_true", help="keep reading new lines until interrupted")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between reads with --follow")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, path, format=None, follow=False, interval=1.0, no_progress=False, **options):
        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file")
        try:
            source = services.source_for_path(path, format)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        total = services.ImportResult()
        started = time.perf_counter()
        remaining = max(0, os.path.getsize(source.path) - int((source.checkpoint or {}).get("offset", 0)))
        bar = tqdm(total=remaining, unit="B", unit_scale=True, desc=os.path.basename(path),
                   disable=no_progress or not sys.stderr.isatty(), file=sys.stderr)
        try:
            while True:
                # Only a one-shot import takes a final line without a newline, once the file stopped growing;
                # --follow waits for the newline like the beat tail.
                complete = not follow and services.log_is_finished(source.path)
                try:
                    result = services.import_source(source, progress=bar.update, complete=complete)
                except services.ImportConflict as exc:
                    raise CommandError(str(exc)) from None
                self._add(total, result)
                if not follow:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stderr.write("interrupted; everything up to the last complete batch is stored")
        finally:
            bar.close()
        total.seconds = time.perf_counter() - started
        self._summary(total)

    @staticmethod
    def _add(total, result):
        total.imported += result.imported
        total.blank += result.blank
        for number, reason in result.rejected_samples:
            if len(total.rejected_samples) < services.MAX_REJECTED_SAMPLES:
                total.rejected_samples.append([number, reason])
        total.rejected += result.rejected
        total.bytes_read += result.bytes_read
        total.events += result.events
        total.unterminated_last_line |= result.unterminated_last_line

    def _summary(self, total):
        self.stdout.write(
            f"imported {total.imported} lines, rejected {total.rejected}, "
            f"{total.bytes_read / 2**20:.1f} MiB in {total.seconds:.1f} s ({total.lines_per_second:,.0f} lines/s)"
        )
        if total.rejected_samples:
            shown = ", ".join(f"{number} ({reason})" for number, reason in total.rejected_samples[:5])
            self.stdout.write(f"first rejected lines: {shown}")
        if total.unterminated_last_line:
            self.stdout.write("the last line had no newline; imported as it is, since the file stopped growing")
        if total.events:
            self.stdout.write("file events: " + ", ".join(total.events))
