"""The collector re-opens a database connection that was cut while it stored a batch, and stores that batch."""

import socket
import threading
import time

import pytest
from django.db import OperationalError, connection

from flowreports.collector import server
from flowreports.collector.server import Collector
from flowreports.models import FlowReport
from flowreports.services import collector_application_name
from flowreports.tests.test_collect_flows import EXPORT_TIME, RunningCommand, ipfix_packet
from flowreports.tests.test_collector_server import DATA_PACKET, TEMPLATE_PACKET, wait_for

FLOWS_PER_PACKET = 25


class FlakySink:
    """Raises `error` on its first `failures` calls (a connection lost mid-batch), then stores."""

    def __init__(self, failures, error=OperationalError):
        self.failures, self.error, self.calls, self.stored = failures, error, 0, []

    def __call__(self, records):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("server closed the connection unexpectedly")
        self.stored += records


@pytest.fixture
def sender():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(server, "RETRY_FIRST_DELAY", 0.01)
    monkeypatch.setattr(server, "RETRY_MAX_DELAY", 0.05)


def test_it_stores_again_a_batch_whose_connection_was_lost_and_drops_nothing(sender, quick_retries):
    sink = FlakySink(failures=3)
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05, retry_on=(OperationalError,)) as collector:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.stored) == 2)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.stored) == 4)
        stats = collector.stats()
    assert (stats["flows_stored"], stats["flows_dropped"], stats["sink_retries"], stats["sink_failures"]) == (
        4, 0, 3, 0)


def test_it_drops_a_batch_the_database_refuses_for_any_other_reason(sender, quick_retries):
    sink = FlakySink(failures=1, error=ValueError)
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05, retry_on=(OperationalError,)) as collector:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["sink_failures"] == 1)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.stored) == 2)
        stats = collector.stats()
    assert (stats["flows_stored"], stats["flows_dropped"], stats["sink_retries"]) == (2, 2, 0)


def test_while_it_retries_only_the_batches_that_overflow_the_queue_are_dropped(sender, quick_retries):
    sink = FlakySink(failures=10**9)
    collector = Collector(sink, listen=("127.0.0.1", 0), batch_size=2, flush_interval=0.05, max_pending_batches=2,
                          retry_on=(OperationalError,))
    with collector:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        for _ in range(6):  # one batch of 2 flows each: one being retried, two queued, three overflow
            sender.sendto(DATA_PACKET, collector.address)
            time.sleep(0.05)
        assert wait_for(lambda: collector.stats()["flows_received"] == 12)
        assert wait_for(lambda: collector.stats()["flows_dropped"] == 6)
        sink.failures = 0  # the database is back
        assert wait_for(lambda: len(sink.stored) == 6)
        stats = collector.stats()
    assert (stats["flows_stored"], stats["flows_dropped"], stats["sink_failures"]) == (6, 6, 0)
    assert stats["sink_retries"] >= 1


def packet_of(number):
    start_ms = EXPORT_TIME * 1000 - 60_000
    return ipfix_packet([
        (f"100.{64 + number // 65536}.{number // 256 % 256}.{number % 256}", "198.51.100.7", 40000 + index, 443,
         6, 3, 1000 + index, start_ms, start_ms + 500, 0x40)
        for index in range(FLOWS_PER_PACKET)
    ])


def terminate_while_writing(stop, terminated):
    """pg_terminate_backend on the collector's own writer connection (found by its application_name) each time
    it is seen in the middle of a statement: COPY or the rollup upserts of a batch."""
    with connection.cursor() as cursor:
        while not stop.is_set() and len(terminated) < 3:
            cursor.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND state = 'active'", [collector_application_name()])
            terminated += cursor.fetchall()
            time.sleep(0.001 if not terminated else 0.3)
    connection.close()


# Not marked integration: its only real part is PostgreSQL, which the PostgreSQL run always has, and on SQLite
# the skip is expected (CI turns an integration test's skip into a failure).
@pytest.mark.django_db(transaction=True)
def test_it_stores_every_flow_when_its_database_connection_is_terminated_mid_batch():
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL")
    packets = 1200
    stop, terminated = threading.Event(), []
    cutter = threading.Thread(target=terminate_while_writing, args=(stop, terminated))
    with RunningCommand(seconds=12, writers=1, batch_size=2000) as command:
        cutter.start()
        for number in range(packets):
            command.send(packet_of(number))
            if number % 20 == 19:
                time.sleep(0.02)  # about 25,000 flows/s: several batches, each a few thousand flows
        cutter.join(timeout=10)
        stop.set()
    output = command.out.getvalue()

    assert len(terminated) >= 1, "the collector's connection was never seen mid-write"
    assert all(ok for _, ok in terminated)
    total = packets * FLOWS_PER_PACKET
    assert f"received {total} flows in {packets} packets, stored {total}" in output, output
    assert "dropped 0," in output
    assert FlowReport.objects.count() == total
    assert FlowReport.objects.values("source_ip").distinct().count() == packets
