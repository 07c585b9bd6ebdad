"""UDP flow collector: receives export packets, decodes them and hands batches of FlowRecords to a sink."""

from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from flowreports.collector.datagrams import DatagramDecoder
from flowreports.collector.decode import FlowDecoder, FlowRecord

logger = logging.getLogger(__name__)

Sink = Callable[[Sequence[FlowRecord]], object]

_MAX_DATAGRAM = 65535
_RECEIVE_BUFFER_SIZES = (32 * 1024 * 1024, 16 * 1024 * 1024, 8 * 1024 * 1024)
_STOP = object()
# Flows the batch queue holds by default while the sink catches up (about 450 bytes each in memory).
PENDING_FLOWS = 320_000
# How long stop() keeps reading datagrams that arrived before it (under a steady stream it would never finish).
_DRAIN_SECONDS = 5.0
# Pauses between attempts to store a batch whose sink failed with a retryable error (a lost connection).
RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 5.0
# Linux: with this socket option each datagram carries the count of datagrams the kernel dropped so far because
# the receive buffer was full (Python's socket module has no name for it).
_SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40) if sys.platform.startswith("linux") else None
_ANCILLARY_SIZE = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0


class Collector:
    """Listen for NetFlow v5/v9, IPFIX and sFlow v5 on UDP and pass decoded records to sink in batches.

    The sink is called from `writers` threads (one by default, so a sink need not be thread-safe), each with one
    batch at a time, a list of FlowRecord. With two writers a database sink stores one batch while the next is
    encoded or stored over a second connection, so the database server's work is not serialized behind one
    connection. A sink that raises one of `retry_on` (a lost database connection) is called again with the same
    batch, after a pause that doubles up to RETRY_MAX_DELAY, until it succeeds or stop() gives up; meanwhile new
    batches wait in the queue. A sink that raises anything else loses that batch (counted in flows_dropped and
    sink_failures). Receiving and
    decoding run in their own thread so a slow sink only fills the batch queue (by default as many batches as
    hold 320,000 flows: 7 at the default 50,000, a few seconds of traffic at the rate one collector stores); when
    that queue is full, new batches are dropped and counted. Batches waiting in the queue when a writer is free
    again go to the sink together, up to max_write flows per call.
    Datagrams the kernel discarded because the socket's receive buffer was full are counted in packets_lost
    (Linux; they are seen when the next datagram arrives).
    """

    def __init__(
        self,
        sink: Sink,
        listen: tuple[str, int] = ("127.0.0.1", 2055),
        batch_size: int = 50_000,
        flush_interval: float = 1.0,
        max_pending_batches: int | None = None,
        max_write: int = 100_000,
        receive_buffer: int | None = None,
        decoder: DatagramDecoder | FlowDecoder | None = None,
        writers: int = 1,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> None:
        if writers < 1:
            raise ValueError("a collector needs at least one writer")
        self.sink = sink
        self.writers = writers
        self.retry_on = retry_on
        self.listen = listen
        self.batch_size = batch_size
        # The most flows one sink call takes when queued batches are stored together.
        self.max_write = max(batch_size, max_write)
        self.flush_interval = flush_interval
        self.receive_buffer_request = receive_buffer
        self.decoder = decoder or DatagramDecoder()
        self.packets_received = 0
        self.flows_received = 0
        self.flows_stored = 0
        self.flows_dropped = 0
        self.sink_failures = 0
        self.sink_retries = 0
        self.packets_lost = 0
        self._count_kernel_drops = False
        self.receive_buffer = 0
        if max_pending_batches is None:
            max_pending_batches = max(2, -(-PENDING_FLOWS // batch_size))
        self._batches: queue.Queue = queue.Queue(maxsize=max_pending_batches)
        self._socket: socket.socket | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._receiver: threading.Thread | None = None
        self._writer_threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (useful when listening on port 0)."""
        if self._socket is None:
            raise RuntimeError("collector is not running")
        return self._socket.getsockname()[:2]

    def start(self) -> Self:
        if self._socket is not None:
            raise RuntimeError("collector already started")
        host = self.listen[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.receive_buffer = self._grow_receive_buffer(sock)
            self._count_kernel_drops = self._enable_drop_count(sock)
            sock.bind(self.listen)
        except OSError:
            sock.close()
            raise
        # A short timeout lets the receiver notice stop() and time-based flushes without a busy loop.
        sock.settimeout(0.05)
        self._socket = sock
        self._stopping.clear()
        self._abandon.clear()
        self._writer_threads = [
            threading.Thread(target=self._write_loop, name=f"flow-collector-writer-{index}", daemon=True)
            for index in range(1, self.writers + 1)
        ]
        self._receiver = threading.Thread(target=self._receive_loop, name="flow-collector-receiver", daemon=True)
        for writer in self._writer_threads:
            writer.start()
        self._receiver.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving (after reading what the kernel has queued), flush the pending batch, wait for the sink."""
        if self._socket is None:
            return
        self._stopping.set()
        if self._receiver is not None:
            self._receiver.join(timeout)
        # One stop mark per writer, queued behind every batch: each writer stores what is ahead of its mark.
        deadline = time.monotonic() + timeout
        for _ in self._writer_threads:
            self._batches.put(_STOP)
        for writer in self._writer_threads:
            writer.join(max(0.0, deadline - time.monotonic()))
        # A writer still retrying a batch drops it (counted) at its next attempt.
        self._abandon.set()
        self._socket.close()
        self._socket = None
        self._receiver = None
        self._writer_threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        decoder_stats = self.decoder.stats()
        with self._lock:
            counters = {
                "packets_received": self.packets_received,
                "flows_received": self.flows_received,
                "flows_stored": self.flows_stored,
                "flows_dropped": self.flows_dropped,
                "sink_failures": self.sink_failures,
                "sink_retries": self.sink_retries,
                "packets_lost": self.packets_lost,
                "malformed_packets": decoder_stats["malformed_packets"],
                "sets_dropped_no_template": decoder_stats["sets_dropped_no_template"],
                "sets_pending": decoder_stats["sets_pending"],
                "templates": decoder_stats["templates"],
                "options_records": decoder_stats["options_records"],
                "batches_pending": self._batches.qsize(),
                "receive_buffer": self.receive_buffer,
            }
        return counters

    def _grow_receive_buffer(self, sock: socket.socket) -> int:
        sizes = (self.receive_buffer_request,) if self.receive_buffer_request else _RECEIVE_BUFFER_SIZES
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        for size in sizes:
            # SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF is capped silently.
            for option in (force, socket.SO_RCVBUF):
                if option is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError:
                    continue
                actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                # Linux reports double the requested size for its bookkeeping.
                if actual >= size:
                    return actual
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    @staticmethod
    def _enable_drop_count(sock: socket.socket) -> bool:
        if _SO_RXQ_OVFL is None or not _ANCILLARY_SIZE:
            return False
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
        except OSError:
            return False
        return True

    def _receive_loop(self) -> None:
        sock = self._socket
        decode = self.decoder.decode
        if self._count_kernel_drops:
            recvmsg, level, kind = sock.recvmsg, socket.SOL_SOCKET, _SO_RXQ_OVFL

            def recvfrom(size):
                packet, ancillary, _flags, address = recvmsg(size, _ANCILLARY_SIZE)
                for cmsg_level, cmsg_type, data in ancillary:
                    if cmsg_level == level and cmsg_type == kind and len(data) >= 4:
                        # Datagrams dropped since the socket was opened, as of this one's arrival.
                        self.packets_lost = int.from_bytes(data[:4], sys.byteorder)
                return packet, address
        else:
            recvfrom = sock.recvfrom
        batch: list[FlowRecord] = []
        deadline = time.monotonic() + self.flush_interval
        stopping = self._stopping
        batch_size = self.batch_size
        drain_until = None
        while True:
            try:
                packet, address = recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                packet = None
            except BlockingIOError:
                break  # stopping, and the kernel's buffer is empty
            except OSError:
                if stopping.is_set():
                    break
                logger.exception("flow collector receive failed")
                time.sleep(0.1)
                continue
            now = time.monotonic()
            if packet is not None:
                exporter = address[0]
                if exporter.startswith("::ffff:") and "." in exporter:
                    # A dual-stack socket reports IPv4 exporters as mapped addresses; keep them comparable.
                    exporter = exporter[7:]
                records = decode(packet, exporter, now)
                with self._lock:
                    self.packets_received += 1
                    self.flows_received += len(records)
                if records:
                    batch.extend(records)
                    if len(batch) >= batch_size:
                        self._enqueue(batch)
                        batch = []
                        deadline = now + self.flush_interval
            if stopping.is_set():
                if drain_until is None:
                    # Read what is already queued in the kernel's buffer first: closing the socket discards it.
                    sock.setblocking(False)
                    drain_until = now + _DRAIN_SECONDS
                elif now >= drain_until:
                    break
            if now >= deadline:
                # Flows held for their exporter's sampling options whose wait is over.
                self._add_released(batch, self.decoder.release(now))
                if batch:
                    self._enqueue(batch)
                    batch = []
                deadline = now + self.flush_interval
        self._add_released(batch, self.decoder.release(everything=True))
        if batch:
            self._enqueue(batch)

    def _add_released(self, batch: list[FlowRecord], records: list[FlowRecord]) -> None:
        if records:
            with self._lock:
                self.flows_received += len(records)
            batch.extend(records)

    def _enqueue(self, batch: list[FlowRecord]) -> None:
        try:
            self._batches.put_nowait(batch)
        except queue.Full:
            with self._lock:
                self.flows_dropped += len(batch)
            logger.warning("flow sink is behind; dropped a batch of %d flows", len(batch))

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = self._batches.get()
            if batch is _STOP:
                break
            # Batches that queued up while the sink was busy are stored together (group commit): one
            # transaction and one rollup update for all of them, so a sink that falls behind catches up.
            while len(batch) < self.max_write:
                try:
                    more = self._batches.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch = batch + more
            self._store(batch)

    def _store(self, batch: list[FlowRecord]) -> None:
        delay = RETRY_FIRST_DELAY
        while True:
            try:
                self.sink(batch)
            except self.retry_on as exc:
                if self._abandon.is_set():
                    logger.error("flow sink still failing at stop (%s); dropped a batch of %d flows", exc, len(batch))
                else:
                    # The connection is re-opened by the next call; later batches wait in the queue meanwhile
                    # (what overflows it is dropped and counted by the receiver).
                    logger.warning("flow sink failed (%s); storing the batch of %d flows again in %.1f s",
                                   exc, len(batch), delay)
                    with self._lock:
                        self.sink_retries += 1
                    self._abandon.wait(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    continue
            except Exception:
                # The sink is supplied by the caller (e.g. a database writer); any failure loses only this batch.
                logger.exception("flow sink failed; dropped a batch of %d flows", len(batch))
            else:
                with self._lock:
                    self.flows_stored += len(batch)
                return
            with self._lock:
                self.flows_dropped += len(batch)
                self.sink_failures += 1
            return
