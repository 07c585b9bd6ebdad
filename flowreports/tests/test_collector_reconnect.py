"""The collector re-opens a database connection that was cut while it stored a batch, and stores that batch."""

import threading
import time

import pytest
from django.db import connection

from flowreports.models import FlowReport
from flowreports.services import collector_application_name
from flowreports.tests.test_collect_flows import EXPORT_TIME, RunningCommand, ipfix_packet

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
FLOWS_PER_PACKET = 25


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
