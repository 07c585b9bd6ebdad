"""manage.py collect_flows: receive NetFlow v5/v9, IPFIX and sFlow v5 over UDP and store the flows as flow reports."""

import logging
import os
import signal
import socket
import sys
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from flowreports.collector import Collector, DatagramDecoder, FlowDecoder
from flowreports.selectors import exporter_sampling_rates
from flowreports.services import FlowSink, record_collector_status

logger = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.0005


def parse_listen(value):
    """'HOST:PORT', '[IPv6]:PORT' or ':PORT' (all IPv4 addresses) -> (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise CommandError(f"--listen {value!r}: write an IPv6 address in brackets, e.g. [::]:2055")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CommandError(f"--listen {value!r}: expected HOST:PORT with a port from 0 to 65535")
    return host or "0.0.0.0", int(port)


class Command(BaseCommand):
    help = (
        "Listen for NetFlow v5/v9, IPFIX and sFlow v5 on UDP (one socket takes all) and store each flow as a "
        "flow report, attributed to its subscriber. Prints counts every --stats-interval seconds and when "
        "stopped (SIGINT/SIGTERM)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--listen", default="0.0.0.0:2055", help="HOST:PORT or [IPv6]:PORT (default 0.0.0.0:2055)")
        parser.add_argument("--batch-size", type=int, default=50_000,
                            help="flows per database transaction (default 50000; a partial batch is stored "
                                 "after --flush-interval)")
        parser.add_argument("--flush-interval", type=float, default=1.0,
                            help="seconds before a partial batch is stored (default 1)")
        parser.add_argument("--stats-interval", type=float, default=60.0,
                            help="seconds between count lines (default 60; 0 prints only at exit)")
        parser.add_argument("--status-interval", type=float, default=5.0,
                            help="seconds between saves of the counters that /metrics reports (default 5)")
        parser.add_argument("--writers", type=int, default=None,
                            help="threads storing batches, each over its own database connection "
                                 "(default 2 on PostgreSQL, 1 on SQLite)")
        parser.add_argument("--sampling-wait", type=float, default=2.0,
                            help="seconds a new exporter's flows without a sampling rate wait for its sampling "
                                 "options before they take the rate set in admin (default 2; 0 does not wait)")
        parser.add_argument("--run-seconds", type=float, default=None,
                            help="stop after this many seconds (for smoke tests and timed captures)")

    def handle(self, *args, listen, batch_size, flush_interval, stats_interval, status_interval, run_seconds,
               writers, sampling_wait, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if flush_interval <= 0:
            raise CommandError("--flush-interval must be positive")
        if status_interval <= 0:
            raise CommandError("--status-interval must be positive")
        if writers is not None and writers < 1:
            raise CommandError("--writers must be at least 1")
        if sampling_wait < 0:
            raise CommandError("--sampling-wait must not be negative")
        if writers is not None and writers > 1 and connection.vendor == "sqlite":
            raise CommandError("--writers: SQLite takes one writer at a time; use 1 (or PostgreSQL)")
        host, port = parse_listen(listen)
        stop = threading.Event()
        self._install_signal_handlers(stop)
        # The receiving thread gets the interpreter back within 0.5 ms instead of 5 ms while the storing
        # thread encodes a batch, so it drains the socket before the kernel's buffer fills.
        sys.setswitchinterval(SWITCH_INTERVAL)
        sink = FlowSink()
        decoder = DatagramDecoder(FlowDecoder(sampling_wait=sampling_wait, default_rates=exporter_sampling_rates()))
        collector = Collector(sink, listen=(host, port), batch_size=batch_size, flush_interval=flush_interval,
                              writers=writers or sink.writers, decoder=decoder,
                              retry_on=(OperationalError, InterfaceError))
        try:
            collector.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {listen}: {exc}") from None
        bound = collector.address
        bound_text = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        self._status = {"hostname": socket.gethostname(), "listen": bound_text, "pid": os.getpid(),
                        "started_at": timezone.now()}
        plural = "s" if collector.writers > 1 else ""
        self.stdout.write(f"Collecting flows on {bound[0]}:{bound[1]} "
                          f"(batch size {batch_size}, {collector.writers} writer{plural})")
        self.stdout.flush()
        started = time.monotonic()
        deadline = None if run_seconds is None else started + run_seconds
        next_status = started + status_interval
        next_stats = started + stats_interval if stats_interval > 0 else None
        try:
            self.save_status(collector)
            while not stop.is_set():
                wake = min(t for t in (next_status, next_stats, deadline) if t is not None)
                if stop.wait(max(0.0, wake - time.monotonic())):
                    break
                now = time.monotonic()
                if now >= next_status:
                    self.save_status(collector)
                    self.reload_sampling_rates(decoder)
                    next_status = now + status_interval
                if next_stats is not None and now >= next_stats:
                    self.stdout.write(self.counts(collector, sink))
                    self.stdout.flush()
                    next_stats = now + stats_interval
                if deadline is not None and now >= deadline:
                    break
        finally:
            collector.stop()
            sink.close()
            self.save_status(collector, stopped=True)
            self.stdout.write("Stopped; " + self.counts(collector, sink))

    def save_status(self, collector, stopped=False):
        try:
            record_collector_status(**self._status, stats=collector.stats(), stopped=stopped)
        except DatabaseError as exc:
            # Losing one status write must not stop the collection; the next one catches up.
            logger.warning("could not save the collector status: %s", exc)

    def reload_sampling_rates(self, decoder):
        """The rates admins set for exporters: a change takes effect within --status-interval seconds."""
        try:
            decoder.flows.default_rates = exporter_sampling_rates()
        except DatabaseError as exc:
            logger.warning("could not read the exporters' sampling rates: %s", exc)

    def counts(self, collector, sink):
        stats = collector.stats()
        decoded = collector.decoder.stats()
        totals = sink.totals()
        return (
            f"received {stats['flows_received']} flows in {stats['packets_received']} packets, "
            f"stored {totals['stored']} ({totals['unattributed']} without subscriber), "
            f"dropped {stats['flows_dropped']}, packets lost in the receive buffer {stats['packets_lost']}, "
            f"malformed packets {stats['malformed_packets']}, "
            f"data sets without template {stats['sets_dropped_no_template']}, "
            f"flows held for sampling options {decoded['flows_held_for_sampling']} "
            f"({decoded['flows_default_rate']} then at the default rate), "
            f"timed by export time {decoded['flows_timed_by_export']}, "
            f"records without a flow {decoded['records_without_flow']}"
        ) + self.sflow_counts(decoded)

    @staticmethod
    def sflow_counts(decoded):
        if not decoded.get("sflow_decoded_packets"):
            return ""
        return (
            f"; sFlow: {decoded['sflow_decoded_packets']} datagrams, {decoded['sflow_flow_samples']} flow samples "
            f"({decoded['sflow_samples_without_flow']} without an IP packet), "
            f"{decoded['sflow_counter_samples']} counter samples skipped, "
            f"malformed datagrams {decoded['sflow_malformed_packets']}"
        )

    def _install_signal_handlers(self, stop):
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
