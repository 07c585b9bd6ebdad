"""UDP collector tests: real datagrams over loopback into a Collector with an in-memory sink."""

import socket
import sys
import threading
import time

import pytest

from flowreports.collector.server import Collector
from flowreports.tests.test_collector_decode import (
    V9_FIELDS,
    V9_ROW_ALLOW,
    V9_ROW_DROP,
    flowset,
    template_record,
    v9_data,
    v9_packet,
)

TEMPLATE_PACKET = v9_packet(flowset(0, template_record(256, V9_FIELDS)))
DATA_PACKET = v9_packet(flowset(256, v9_data(V9_ROW_ALLOW, V9_ROW_DROP)))


class ListSink:
    def __init__(self, fail_first=0):
        self.batches = []
        self.fail_first = fail_first
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, records):
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise RuntimeError("database unavailable")
            self.batches.append(list(records))

    @property
    def records(self):
        with self.lock:
            return [record for batch in self.batches for record in batch]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def sender():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


def test_collector_decodes_datagrams_and_feeds_sink(sender):
    sink = ListSink()
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05) as collector:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        for _ in range(10):
            sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.records) == 20)
        stats = collector.stats()
    assert stats["packets_received"] == 11
    assert stats["flows_received"] == 20
    assert stats["flows_stored"] == 20
    assert stats["flows_dropped"] == 0
    assert stats["malformed_packets"] == 0
    assert stats["receive_buffer"] >= 1024 * 1024
    records = sink.records
    assert {record.exporter for record in records} == {"127.0.0.1"}
    assert [record.action for record in records[:2]] == ["allow", "drop"]
    assert (records[0].source_ip, records[0].bytes, records[0].packets) == ("10.1.1.1", 210, 3)


def test_malformed_datagrams_are_counted_and_collector_keeps_running(sender):
    sink = ListSink()
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05) as collector:
        sender.sendto(b"\x00\x05short", collector.address)
        sender.sendto(b"\x12\x34" + b"\0" * 40, collector.address)
        sender.sendto(v9_packet(b"\x01\x00\x00\x00"), collector.address)  # zero-length set
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.records) == 2)
        assert wait_for(lambda: collector.stats()["packets_received"] == 5)
        stats = collector.stats()
    assert stats["malformed_packets"] == 3
    assert stats["flows_stored"] == 2


def test_data_before_template_is_stored_once_template_arrives(sender):
    sink = ListSink()
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05) as collector:
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["sets_pending"] == 1)
        assert sink.records == []
        sender.sendto(TEMPLATE_PACKET, collector.address)
        assert wait_for(lambda: len(sink.records) == 2)
        stats = collector.stats()
    assert stats["sets_pending"] == 0
    assert stats["flows_received"] == stats["flows_stored"] == 2


def test_sink_failure_drops_only_that_batch(sender):
    sink = ListSink(fail_first=1)
    with Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05) as collector:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["sink_failures"] == 1)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.records) == 2)
        stats = collector.stats()
    assert stats["flows_received"] == 4
    assert stats["flows_dropped"] == 2
    assert stats["flows_stored"] == 2


def test_batches_flush_on_size_and_on_stop(sender):
    sink = ListSink()
    collector = Collector(sink, listen=("127.0.0.1", 0), batch_size=6, flush_interval=60)
    collector.start()
    try:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        for _ in range(4):  # 8 flows: one batch once 6 are reached, the rest waits for the interval
            sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.batches) == 1)
        assert len(sink.batches[0]) == 6
        assert wait_for(lambda: collector.stats()["flows_received"] == 8)
        time.sleep(0.1)
        assert len(sink.batches) == 1
    finally:
        collector.stop()
    assert [len(batch) for batch in sink.batches] == [6, 2]
    assert collector.stats()["flows_stored"] == 8


def test_slow_sink_overflow_is_counted(sender):
    release = threading.Event()

    def slow_sink(records):
        release.wait(5)

    collector = Collector(slow_sink, listen=("127.0.0.1", 0), batch_size=1, max_pending_batches=1)
    collector.start()
    try:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        for _ in range(5):
            sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["packets_received"] == 6)
        assert collector.stats()["flows_dropped"] >= 2
    finally:
        release.set()
        collector.stop()
    stats = collector.stats()
    assert stats["flows_stored"] + stats["flows_dropped"] == stats["flows_received"] == 10


def test_batches_queued_behind_a_busy_sink_are_stored_together(sender):
    """Group commit: what waited while the sink was busy reaches it in one call, never more than max_write."""
    release = threading.Event()
    sink = ListSink()

    def blocking_sink(records):
        if not sink.batches:
            release.wait(5)
        sink(records)

    # Data packets carry 2 flows: batches of 2, and at most 6 flows (3 batches) per sink call.
    collector = Collector(blocking_sink, listen=("127.0.0.1", 0), batch_size=2, max_pending_batches=16,
                          max_write=6)
    collector.start()
    try:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["batches_pending"] == 0 and
                        collector.stats()["flows_received"] == 2)
        for _ in range(5):  # 5 more batches queue up while the first call blocks
            sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["batches_pending"] == 5)
        release.set()
        assert wait_for(lambda: collector.stats()["flows_stored"] == 12)
    finally:
        release.set()
        collector.stop()
    assert [len(batch) for batch in sink.batches] == [2, 6, 4]
    assert collector.stats()["flows_dropped"] == 0


def test_several_writers_store_batches_side_by_side_and_all_stop(sender):
    """A second writer stores the next batch while the first is still busy; stop drains and joins both."""
    both_busy = threading.Barrier(2, timeout=5)
    sink = ListSink()
    calls = []

    def overlapping_sink(records):
        with sink.lock:
            calls.append(threading.current_thread().name)
            first_two = len(calls) <= 2
        if first_two:
            both_busy.wait()  # BrokenBarrierError (the batch dropped) unless the two calls overlap
        sink(records)

    collector = Collector(overlapping_sink, listen=("127.0.0.1", 0), batch_size=2, flush_interval=60, writers=2)
    collector.start()
    try:
        threads = list(collector._writer_threads)
        assert sorted(thread.name for thread in threads) == ["flow-collector-writer-1", "flow-collector-writer-2"]
        sender.sendto(TEMPLATE_PACKET, collector.address)
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: both_busy.n_waiting == 1)  # one writer holds the first batch
        for _ in range(5):  # the next reaches the other writer, which releases both
            sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: collector.stats()["flows_stored"] == 12)
    finally:
        collector.stop()
    assert set(calls[:2]) == {"flow-collector-writer-1", "flow-collector-writer-2"}
    assert collector.stats()["flows_dropped"] == 0
    assert len(sink.records) == 12
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize(("batch_size", "batches"), [(50_000, 7), (20_000, 16), (1_000_000, 2), (1, 320_000)])
def test_the_batch_queue_holds_320_000_flows_by_default_whatever_the_batch_size(batch_size, batches):
    collector = Collector(ListSink(), listen=("127.0.0.1", 0), batch_size=batch_size)
    assert collector._batches.maxsize == batches
    assert Collector(ListSink(), batch_size=batch_size, max_pending_batches=3)._batches.maxsize == 3


def test_a_collector_needs_a_writer():
    with pytest.raises(ValueError, match="at least one writer"):
        Collector(ListSink(), listen=("127.0.0.1", 0), writers=0)


def test_stop_is_idempotent_and_releases_port():
    collector = Collector(ListSink(), listen=("127.0.0.1", 0))
    collector.start()
    address = collector.address
    collector.stop()
    collector.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(address)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("flow-collector")]


def test_ipv6_listen_address(sender):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    sink = ListSink()
    try:
        collector = Collector(sink, listen=("::1", 0), flush_interval=0.05).start()
    except OSError as error:
        pytest.skip(f"cannot bind ::1: {error}")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender6:
            sender6.sendto(TEMPLATE_PACKET, collector.address)
            sender6.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: len(sink.records) == 2)
        assert sink.records[0].exporter == "::1"
    finally:
        collector.stop()


def test_dual_stack_listener_reports_plain_ipv4_exporter(sender):
    sink = ListSink()
    try:
        collector = Collector(sink, listen=("::", 0), flush_interval=0.05).start()
    except OSError as error:
        pytest.skip(f"cannot bind ::: {error}")
    try:
        sender.sendto(TEMPLATE_PACKET, ("127.0.0.1", collector.address[1]))
        sender.sendto(DATA_PACKET, ("127.0.0.1", collector.address[1]))
        if not wait_for(lambda: len(sink.records) == 2, timeout=2):
            pytest.skip("IPv6 socket is not dual-stack here")
        assert sink.records[0].exporter == "127.0.0.1"
    finally:
        collector.stop()


def stalled_decoder():
    """(busy, release, decoder): the decoder holds the receiving thread at its first packet, with busy
    set, until release is set (5 s at most), so that datagrams pile up in the kernel meanwhile."""
    from flowreports.collector.decode import FlowDecoder

    busy, release = threading.Event(), threading.Event()

    class StalledDecoder(FlowDecoder):
        def decode(self, packet, exporter, now=None):
            if not busy.is_set():
                busy.set()
                release.wait(5)
            return super().decode(packet, exporter, now)

    return busy, release, StalledDecoder()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's drop count is a Linux socket option")
def test_datagrams_the_kernel_drops_while_the_receiver_is_busy_are_counted(sender):
    busy, release, decoder = stalled_decoder()
    sink = ListSink()
    collector = Collector(sink, listen=("127.0.0.1", 0), flush_interval=0.05, receive_buffer=4096,
                          decoder=decoder)
    collector.start()
    try:
        sender.sendto(TEMPLATE_PACKET, collector.address)
        assert busy.wait(5)
        # Far more than a 4 KiB receive buffer holds while the receiving thread is stalled.
        for _ in range(200):
            sender.sendto(DATA_PACKET, collector.address)
        release.set()
        assert wait_for(lambda: collector.stats()["batches_pending"] == 0 and len(sink.records) >= 2)
        time.sleep(0.2)
        # The count rides on the datagrams queued after the drops: it is current once a later one is read.
        sender.sendto(DATA_PACKET, collector.address)
        assert wait_for(lambda: (stats := collector.stats())["packets_received"] + stats["packets_lost"] == 202)
    finally:
        collector.stop()
    stats = collector.stats()
    assert stats["packets_lost"] >= 150
    assert stats["flows_received"] == stats["flows_stored"] == 2 * (stats["packets_received"] - 1)
    assert len(sink.records) == stats["flows_stored"]


def test_stop_reads_the_datagrams_already_queued_before_closing(sender):
    busy, release, decoder = stalled_decoder()
    sink = ListSink()
    collector = Collector(sink, listen=("127.0.0.1", 0), flush_interval=60, decoder=decoder)
    collector.start()
    sender.sendto(TEMPLATE_PACKET, collector.address)
    assert busy.wait(5)
    for _ in range(50):
        sender.sendto(DATA_PACKET, collector.address)
    stopper = threading.Thread(target=collector.stop)
    stopper.start()
    time.sleep(0.1)  # stop() is waiting for the receiving thread, which still holds 50 datagrams in the kernel
    release.set()
    stopper.join(10)
    stats = collector.stats()
    assert stats["packets_received"] == 51
    assert stats["flows_received"] == stats["flows_stored"] == len(sink.records) == 100
