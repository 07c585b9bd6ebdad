"""Writes of the access-log side: import a Squid log (one-shot or tailed) in batches, clear and prune entries.

The only writer of ProxyLogEntry: every insert goes through store_rows and every delete through delete_entries
or clear_logs, which keep the hourly rollup (proxylogs.rollups) exact in the same transaction."""

import dataclasses
import io
import ipaddress
import logging
import os
import queue
import re
import sys
import threading
import time
from functools import lru_cache

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from proxylogs import dashboard_rollups
from proxylogs.ingest.domains import file_extension, registrable_domain, user_agent_category
from proxylogs.ingest.parse import Summary, blocked, parse_lines
from proxylogs.ingest.rows import SquidRows
from proxylogs.models import LogImport, LogSource, ProxyLogEntry, WafCategory
from proxylogs.rollups import HOURLY, count_batch
from vpnmonitor import partitions, retention, rollups
from vpnmonitor.models import audit
from vpnmonitor.privacy import mask_host, mask_ip
from vpnmonitor.tailing import Checkpoint, read_new_lines

logger = logging.getLogger(__name__)

BATCH_BYTES = 8 << 20
"""Bytes of a file stored in one transaction, with the checkpoint after them (and the rollups' upserts of them)."""
CHUNK_BYTES = 2 << 20
"""Bytes of a file parsed at a time. A batch is read, parsed and copied a chunk at a time, so that the import holds
the rows of three chunks at most, whatever the batch; its rollup counts are merged over its chunks and upserted once
(a key seen in every chunk is written once, not once a chunk)."""
MAX_REJECTED_SAMPLES = 10

# Column order of the COPY and of entry_row(); every concrete field but the id.
COLUMNS = [
    "timestamp", "elapsed_ms", "client_ip", "client_host", "client_network", "user", "method", "url", "destination",
    "destination_host", "destination_port", "destination_is_ip", "domain", "file_extension", "http_status",
    "result_code", "bytes", "hierarchy", "peer", "mime_type", "user_agent", "user_agent_category", "referer",
    "blocked", "waf_category", "source_id",
]
_ATTNAMES = [field.attname for field in ProxyLogEntry._meta.concrete_fields if not field.primary_key]
assert sorted(_ATTNAMES) == sorted(COLUMNS), "COLUMNS is out of date with ProxyLogEntry"

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1

# PostgreSQL types of COLUMNS, for binary COPY (smaller to send, cheaper for the server to read than text).
COPY_TYPES = [
    "timestamptz", "int4", "inet", "text", "text", "text", "text", "text", "text",
    "text", "int4", "bool", "text", "text", "int2",
    "text", "int8", "text", "text", "text", "text", "text", "text",
    "bool", "text", "int8",
]
assert len(COPY_TYPES) == len(COLUMNS)
_TIME = COLUMNS.index("timestamp")


class ImportConflict(RuntimeError):
    """Another import advanced this source's checkpoint meanwhile; stopping keeps every line stored once."""


class WafTagger:
    """Tags a URL with the first enabled WafCategory whose pattern it matches (one combined regex)."""

    def __init__(self, categories):
        self.names = {}
        parts = []
        for index, category in enumerate(categories):
            try:
                re.compile(category.pattern)
            except re.error:
                logger.warning("WAF category %s has an invalid pattern; it is ignored", category.name)
                continue
            group = f"c{index}"
            self.names[group] = category.name
            parts.append(f"(?P<{group}>{category.pattern})")
        self.regex = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        self._memo = {}

    @classmethod
    def enabled(cls):
        return cls(WafCategory.objects.filter(enabled=True).order_by("name"))

    # Searching the combined pattern is the costliest derivation, and URLs repeat (CONNECT host:443, popular
    # resources), so the verdicts of short URLs are remembered: at most MEMO_SIZE entries of MEMO_URL_LENGTH.
    MEMO_SIZE = 65536
    MEMO_URL_LENGTH = 256

    def tag(self, url):
        if self.regex is None:
            return None
        memo = self._memo
        try:
            return memo[url]
        except KeyError:
            pass
        match = self.regex.search(url)
        name = self.names[match.lastgroup] if match else None
        if len(url) <= self.MEMO_URL_LENGTH:
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[url] = name
        return name


@lru_cache(maxsize=65536)
def _client_columns(client):
    """(client_ip, client_host, client_network) of a parsed client: an IP address, or a host name as logged."""
    try:
        ipaddress.ip_address(client)
    except ValueError:
        return None, client, mask_host(client)
    return client, None, mask_ip(client)


def _cut(value, length):
    return value if value is None or len(value) <= length else value[:length]


def entry_row(record, *, source_id=None, waf=None):
    """The COLUMNS tuple of one parsed LogRecord, with the derived columns; None when it cannot be stored."""
    (timestamp, elapsed_ms, client_ip, result_code, http_status, size, method, url, destination, host, port, is_ip,
     user, hierarchy, peer, mime_type, user_agent, referer) = record
    if http_status > 999 or size > _INT64 or (elapsed_ms or 0) > _INT32:
        return None
    # Values longer than their column are cut (inline rather than through a helper: this runs for every line).
    domain = registrable_domain(host)
    # The host is never longer than the destination, nor its registrable domain than the host.
    if destination is not None and len(destination) > 255:
        destination, host, domain = _cut(destination, 300), _cut(host, 255), _cut(domain, 255)
    if user is not None and len(user) > 255:
        user = user[:255]
    if len(method) > 32:
        method = method[:32]
    if len(result_code) > 64:
        result_code = result_code[:64]
    if len(hierarchy) > 64:
        hierarchy = hierarchy[:64]
    if peer is not None and len(peer) > 255:
        peer = peer[:255]
    if mime_type is not None and len(mime_type) > 255:
        mime_type = mime_type[:255]
    return (
        timestamp, elapsed_ms, *_client_columns(client_ip), user, method, url, destination, host, port, is_ip,
        domain, file_extension(url), http_status, result_code, size, hierarchy, peer, mime_type, user_agent,
        user_agent_category(user_agent) if user_agent else None, referer, blocked(http_status, result_code),
        waf.tag(url) if waf is not None else None, source_id,
    )


def count_rows(rows, *, daily=True):
    """The rollup counts of COLUMNS tuples: {Rollup: Counter} for the hourly rollup and the dashboard rollups
    (without their daily ones: daily=False, see dashboard_rollups.prepare)."""
    return {HOURLY: count_batch(rows, COLUMNS), **dashboard_rollups.count_batch(rows, COLUMNS, daily=daily)}


def _merged(into, counts):
    """count_rows's counts of one more chunk of a batch merged into the batch's."""
    for rollup, value in counts.items():
        into[rollup] = rollups.merge(rollup, into.get(rollup, {}), value)
    return into


def store_rows(rows, counts=None, *, encoded=None):
    """Insert COLUMNS tuples (COPY on PostgreSQL, bulk_create elsewhere) and add them to the hourly rollup and the
    dashboard rollups, in one transaction. Returns how many. The only insert of entries: every other writer stores
    through it. `counts`: the rollup counts to apply with them, when the caller has counted them already, or {}
    when the caller applies them itself later in the same transaction (the import counts in its parsing thread and
    upserts the counts of a whole batch after its last chunk of rows). `encoded`: the rows' COPY data
    (CopyEncoder), when the caller has encoded them already (on PostgreSQL)."""
    if not rows:
        return 0
    if counts is None:
        counts = count_rows(rows)

    def insert():
        # A savepoint: a batch refused for want of a partition (partitions.write) is stored again in the caller's
        # transaction.
        with transaction.atomic():
            if connection.vendor == "postgresql":
                connection.ensure_connection()
                data = encoded if encoded is not None else CopyEncoder(connection.connection).encode(rows)
                quote = connection.ops.quote_name
                columns = ", ".join(quote(column) for column in COLUMNS)
                table = quote(ProxyLogEntry._meta.db_table)
                with connection.wrap_database_errors, connection.connection.cursor() as cursor, \
                        cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
            else:
                ProxyLogEntry.objects.bulk_create(
                    [ProxyLogEntry(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=500
                )
            rollups.apply(counts, growing=True)

    partitions.write(ProxyLogEntry, insert, lambda: {partitions.day_number(row[_TIME]) for row in rows})
    return len(rows)


class CopyEncoder:
    """Row tuples as PostgreSQL binary COPY data (COPY_TYPES), made on the client alone: psycopg's Copy writing to
    a buffer rather than to the server. The import's parsing thread encodes a chunk while the chunk before it
    is being sent; the thread that sends it then holds the GIL only to hand the data over, so the parsing goes on
    while it waits for the server.

    pg_connection: a psycopg connection, for its adapters only (nothing is sent on it)."""

    def __init__(self, pg_connection):
        self._cursor = pg_connection.cursor()
        self._cursor.adapters.register_dumper(None, _inet_dumper())

    def encode(self, rows):
        from psycopg import Copy
        from psycopg.copy import FileWriter

        buffer = io.BytesIO()
        with Copy(self._cursor, binary=True, writer=FileWriter(buffer)) as copy:
            copy.set_types(COPY_TYPES)
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        return buffer.getvalue()


@lru_cache(maxsize=65536)
def _inet_binary(text):
    """PostgreSQL's binary inet of an address string (family, prefix length, is-cidr, length, address bytes)."""
    address = ipaddress.ip_address(text)
    packed = address.packed
    # PGSQL_AF_INET is 2, PGSQL_AF_INET6 is 3 (not the platform's AF_* values).
    return bytes((2 if address.version == 4 else 3, address.max_prefixlen, 0, len(packed))) + packed


@lru_cache(maxsize=1)
def _inet_dumper():
    """A binary COPY dumper for inet columns that takes the address as the str the parser produces."""
    from psycopg.adapt import Dumper
    from psycopg.postgres import types
    from psycopg.pq import Format

    class InetStrBinaryDumper(Dumper):
        format = Format.BINARY
        oid = types["inet"].oid

        def dump(self, obj):
            return _inet_binary(obj)

    return InetStrBinaryDumper


def store_records(records, *, source_id=None, waf=None):
    """Store parsed LogRecords (tests, demo data); returns how many were stored."""
    rows = [row for row in (entry_row(r, source_id=source_id, waf=waf) for r in records) if row is not None]
    return store_rows(rows)


@dataclasses.dataclass
class ImportResult:
    imported: int = 0
    rejected: int = 0
    blank: int = 0
    rejected_samples: list = dataclasses.field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0
    events: list = dataclasses.field(default_factory=list)
    unterminated_last_line: bool = False
    """A final line without a newline was imported (one-shot import of a file that stopped growing)."""

    @property
    def lines(self):
        return self.imported + self.rejected

    @property
    def lines_per_second(self):
        return (self.imported + self.rejected + self.blank) / self.seconds if self.seconds else 0.0


def source_for_path(path, fmt=None):
    """The LogSource of path (absolute), created disabled when the command meets a new file."""
    path = os.path.abspath(path)
    source = LogSource.objects.filter(path=path).order_by("pk").first()
    if source is None:
        name = path if len(path) <= 100 else "…" + path[-99:]
        source = LogSource.objects.create(name=name, path=path, format=fmt or LogSource.Format.SQUID, enabled=False)
    elif fmt and source.format != fmt:
        raise ValueError(f"{path} is already configured as format {source.format!r}, not {fmt!r}")
    return source


SETTLE_SECONDS = 2.0
"""A file whose size and mtime stay the same this long, or whose mtime is this old, has stopped growing."""


def log_is_finished(path, *, settle_seconds=SETTLE_SECONDS):
    """True when the file ends without a newline and has stopped growing, so its last line is complete as it is.

    A writer (Squid) appends a whole line at a time, but a one-shot import may meet a file another program
    left without a final newline. The last line is taken as complete only when the file's mtime is older than
    settle_seconds, or its size and mtime stay the same over settle_seconds.
    """
    with open(path, "rb") as log:
        before = os.fstat(log.fileno())
        if before.st_size == 0:
            return False
        log.seek(before.st_size - 1)
        if log.read(1) == b"\n":
            return False
    if time.time() - before.st_mtime >= settle_seconds:
        return True
    time.sleep(settle_seconds)
    after = os.stat(path)
    return (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


@dataclasses.dataclass
class _PreparedChunk:
    """One chunk of the file, parsed and derived, ready to be copied. The last chunk of a batch carries the batch's
    rollup upserts, encoded (rollups.prepare), and the checkpoint after it: the import then commits."""

    rows: list
    checkpoint: dict
    read: int
    rejected: int
    blank: int
    samples: list
    event: str | None
    unterminated_last_line: bool = False
    counts: dict | None = None
    """The batch's upserts, on its last chunk only."""
    encoded: bytes | None = None
    """The rows' COPY data (PostgreSQL)."""


def _prepare_batches(source, expected, waf, batch_bytes, complete=False, encoder=None):
    """Read what is new in the source's file since `expected`, parse it and count its rollups, chunk by chunk (CPU
    only, no database). A batch is at most batch_bytes of chunks of at most CHUNK_BYTES; its counts are merged
    over its chunks and encoded once, on its last chunk (at the end of the file, a chunk of no rows after it).
    encoder: a CopyEncoder, to encode each chunk's rows as COPY data too."""
    line_number = int(expected.get("line", 0))
    chunk_bytes = min(batch_bytes, CHUNK_BYTES)
    # Native lines take the fused parse-and-derive path; it gives the rows parse_lines and entry_row give.
    native = (SquidRows(source_id=source.pk, waf=waf, entry_row=entry_row, client_columns=_client_columns)
              if source.format in ("squid", "native") else None)
    counts, batch_read, checkpoint = {}, 0, None
    for batch in read_new_lines(source.path, Checkpoint.from_dict(expected), max_bytes=chunk_bytes,
                                complete=complete):
        if batch.event in ("rotated", "truncated"):
            line_number = 0
        lines = batch.lines
        samples = []
        nul_lines = 0
        if any("\x00" in line for line in lines):
            # PostgreSQL text cannot hold NUL; such a line is garbage anyway.
            for number, line in enumerate(lines, line_number + 1):
                if "\x00" in line:
                    nul_lines += 1
                    samples.append([number, "NUL character"])
            lines = ["" if "\x00" in line else line for line in lines]
        summary = Summary(max_errors=MAX_REJECTED_SAMPLES)
        if native is not None:
            rows = native.rows(lines, line_number + 1, summary, samples)
        else:
            rows = []
            append = rows.append
            for number, record in parse_lines(lines, source.format, summary, start=line_number + 1):
                row = entry_row(record, source_id=source.pk, waf=waf)
                if row is None:
                    samples.append([number, "value out of range"])
                else:
                    append(row)
        out_of_range = len(samples) - nul_lines
        samples += [[number, reason] for number, reason in summary.errors]
        line_number += len(batch.lines)
        if rows:
            _merged(counts, count_rows(rows, daily=False))
        read = batch.checkpoint.offset - batch.start_offset
        batch_read += read
        checkpoint = {**batch.checkpoint.to_dict(), "line": line_number}
        # The batch ends where one more chunk could take it past batch_bytes.
        last = batch_read + chunk_bytes > batch_bytes
        yield _PreparedChunk(
            rows=rows, checkpoint=checkpoint, read=read, rejected=nul_lines + out_of_range + summary.rejected,
            blank=summary.blank - nul_lines, samples=sorted(samples)[:MAX_REJECTED_SAMPLES], event=batch.event,
            unterminated_last_line=batch.unterminated_last_line,
            counts=dashboard_rollups.prepare(counts) if last else None,
            encoded=encoder.encode(rows) if encoder is not None and rows else None,
        )
        if last:
            counts, batch_read = {}, 0
    if batch_read:
        yield _PreparedChunk(rows=[], checkpoint=checkpoint, read=0, rejected=0, blank=0, samples=[], event=None,
                             counts=dashboard_rollups.prepare(counts))


class _ReadAhead:
    """Runs a generator in a thread, at most `depth` items ahead of the consumer, and iterates over its items.

    The parsing of the next chunk then overlaps the COPY of the current one: the network and server waits of the
    COPY and of its commit release the GIL. Exceptions of the generator are raised to the consumer; close() (or
    leaving the with block) stops the thread and closes the generator, so the file is never left open.
    """

    _END = object()

    SWITCH_INTERVAL = 0.001
    """Seconds a thread may hold the GIL while another waits for it, while the parsing thread runs (Python's
    default is 5 ms). The consumer waits on the server many times a batch (each statement, each COPY buffer), and
    after each wait it needs the GIL back from the parsing thread, which holds it for the whole interval: with
    the default, those waits added about 1.5 us a line to an import."""

    def __init__(self, make_generator, depth=1):
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, self.SWITCH_INTERVAL))
        self._items = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(make_generator,), name="proxylogs-parse",
                                        daemon=True)
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, make_generator):
        error = None
        try:
            generator = make_generator()
            try:
                for item in generator:
                    if not self._put((item, None)):
                        return
            finally:
                generator.close()
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer, which raises it
            error = exc
        self._put((self._END, error))

    def __iter__(self):
        while True:
            item, error = self._items.get()
            if item is self._END:
                if error is not None:
                    raise error
                return
            yield item

    def close(self):
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._switch_interval)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _commit_without_waiting_for_the_disk():
    """Let this transaction's commit return before its WAL is flushed (PostgreSQL's asynchronous commit).

    Safe for an import batch: its rows and the checkpoint after them commit together, so a server crash can
    only lose the last few batches (at most three times wal_writer_delay of commits) whole, checkpoint included,
    and the next import reads their lines from the file again: nothing is lost or stored twice. Waiting for the
    flush would stall the import once per batch on a disk shared with other writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def import_source(source, *, progress=None, batch_bytes=BATCH_BYTES, complete=False):
    """Read what is new in the source's file since its checkpoint and store it; returns an ImportResult.

    A last line without a newline waits for its newline, unless `complete` says the file is finished (see
    log_is_finished): a one-shot import then takes it as it is.

    Each batch of complete lines is stored with the checkpoint after it in one transaction, so a crash or a
    concurrent run never stores a line twice nor skips one. Bad lines are counted, not fatal. `progress` is
    called with the number of bytes consumed after each batch. A thread parses and counts the next chunk while this
    one is copied; it never holds more than two chunks besides the one being copied, so memory stays constant.
    """
    result = ImportResult()
    started = time.perf_counter()
    expected = dict(source.checkpoint or {})
    waf = WafTagger.enabled()
    status, message = LogImport.Status.SUCCESS, ""
    started_at = timezone.now()
    try:
        encoder = None
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            encoder = CopyEncoder(connection.connection)
        with _ReadAhead(lambda: _prepare_batches(source, dict(expected), waf, batch_bytes, complete,
                                                 encoder)) as prepared:
            chunks = iter(prepared)
            for chunk in chunks:
                imported = rejected = read = 0
                with transaction.atomic():
                    _commit_without_waiting_for_the_disk()
                    current = LogSource.objects.select_for_update().only("checkpoint").get(pk=source.pk)
                    if (current.checkpoint or {}) != expected:
                        raise ImportConflict(f"the checkpoint of {source.name} moved during the import; stopped")
                    while True:
                        if chunk.event in ("rotated", "truncated"):
                            result.events.append(chunk.event)
                        result.blank += chunk.blank
                        room = MAX_REJECTED_SAMPLES - len(result.rejected_samples)
                        result.rejected_samples += chunk.samples[:max(room, 0)]
                        result.unterminated_last_line |= chunk.unterminated_last_line
                        imported += store_rows(chunk.rows, {}, encoded=chunk.encoded)
                        rejected += chunk.rejected
                        read += chunk.read
                        if chunk.counts is not None:
                            break
                        chunk = next(chunks)
                    rollups.apply(chunk.counts, growing=True)
                    LogSource.objects.filter(pk=source.pk).update(
                        checkpoint=chunk.checkpoint,
                        lines_imported=F("lines_imported") + imported,
                        lines_rejected=F("lines_rejected") + rejected,
                    )
                expected = chunk.checkpoint
                result.imported += imported
                result.rejected += rejected
                result.bytes_read += read
                if progress is not None:
                    progress(read)
    except Exception as exc:
        status, message = LogImport.Status.FAILED, f"{type(exc).__name__}: {exc}"
        LogSource.objects.filter(pk=source.pk).update(last_error=message[:2000])
        raise
    finally:
        result.seconds = time.perf_counter() - started
        source.checkpoint = expected
        if status == LogImport.Status.SUCCESS:
            LogSource.objects.filter(pk=source.pk).update(last_import_at=timezone.now(), last_error="")
        if result.lines or status == LogImport.Status.FAILED:
            LogImport.objects.create(
                source=source, path=source.path, format=source.format, started_at=started_at,
                finished_at=timezone.now(), status=status, lines_imported=result.imported,
                lines_rejected=result.rejected, rejected_samples=result.rejected_samples, message=message,
            )
    return result


def tail_enabled_sources():
    """One pass over every enabled LogSource; a failing source is recorded and does not stop the others."""
    results = {}
    for source in LogSource.objects.filter(enabled=True).order_by("pk"):
        try:
            outcome = import_source(source)
        except (OSError, ImportConflict) as exc:
            logger.warning("proxy log %s: %s", source.path, exc)
            results[source.name] = {"error": str(exc)}
            continue
        except Exception as exc:
            logger.exception("proxy log %s: import failed", source.path)
            results[source.name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[source.name] = {"imported": outcome.imported, "rejected": outcome.rejected}
    return results


def delete_entries(queryset):
    """Delete entries and subtract them from the rollups, in one transaction; returns how many were deleted
    (retention's delete of the proxy_logs dataset, and the admin's). The last-seen tables, which cannot be
    subtracted from, drop the keys seen only before every entry left (see dashboard_rollups)."""
    with transaction.atomic():
        deleted = rollups.delete(queryset, rollups=[r for r in rollups.of(ProxyLogEntry) if r.subtractable])
        dashboard_rollups.forget_unseen()
        return deleted


def clear_logs(actor=None):
    """Delete every access-log entry (POST /api/logs/clear); audited. Returns how many were deleted."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(ProxyLogEntry._meta.db_table)
            with connection.cursor() as cursor:
                # TRUNCATE's lock, taken first: the imports under way commit their rows and counts before the
                # count below, and the next ones wait for the table and its rollup to be empty.
                cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                deleted = ProxyLogEntry.objects.count()
                # TRUNCATE is instant on any size; the rollup is emptied with it.
                rollups.clear(ProxyLogEntry)
                cursor.execute(f"TRUNCATE {table}")
        else:
            deleted = delete_entries(ProxyLogEntry.objects.all())
        audit(actor, "proxylogs.clear", "proxy_logs", deleted=deleted)
    return deleted


def clear_old_logs(actor=None):
    """Delete entries past the proxy_logs retention policy (POST /api/logs/clear-old); audited."""
    days = retention.retention_days("proxy_logs")
    deleted = retention.prune("proxy_logs")
    audit(actor, "proxylogs.clear_old", "proxy_logs", deleted=deleted, retention_days=days)
    return deleted, days
