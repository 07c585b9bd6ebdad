"""Daily partitions of large time-series tables on PostgreSQL, so that retention drops whole days.

A raw table is declared once (register: its model and time column) and turned, by a migration running
PartitionByDay, into a table partitioned by RANGE on that column with one partition per UTC day, named
<table>_pYYYYMMDD. The model does not change: Django still sees `id` as its primary key (the table's is
(id, time), as a partitioned table's must include its partition key; ids come from the same identity sequence,
so they stay unique). SQLite keeps the plain table and retention's DELETE.

Partitions exist before rows arrive:

- create_ahead() (a beat task) makes today's and the next AHEAD days' partitions;
- writers insert through write(), which makes, when a batch fails for want of a partition, the partitions of
  the days the batch touches (any day: an exporter's clock can be off by years) and inserts it again, so a
  batch of days that have partitions costs nothing more than its insert. ensure() makes the missing ones of
  some days, skipping the days this process knows exist; a missing day is made under an advisory lock on the
  table (writers of the same new day wait for one another; the second finds it made) in a short transaction
  of its own: an empty table is created, then ATTACHed. CREATE TABLE ... PARTITION OF would take
  an ACCESS EXCLUSIVE lock on the parent, holding up every read and write of the table while it waits for the
  reads under way; ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE, which readers and writers do not conflict
  with (only other DDL, ANALYZE and VACUUM of the parent).

An index that only reads of past days need (a btree on a column whose values arrive in no order, which every
inserted row would pay for) is declared as a ClosedDayIndex rather than on the table: the hourly beat task builds
it on each partition once its day is over (index_closed), CONCURRENTLY, and reads of the current day do without.

There is no DEFAULT partition. With one, a row of a day without a partition would land in it and stay there
(retention never drops it by day), every partition created later would have to scan it under an ACCESS
EXCLUSIVE lock to prove none of its rows belong to the new day, and DETACH ... CONCURRENTLY would be refused.
A row of a day without a partition is an error that writers avoid by ensure().

Retention (drop_before) removes each partition whose day ended before the cutoff, oldest first, holding the
table's advisory lock across the steps: DETACH PARTITION ... CONCURRENTLY (no lock that a read or write of
the table waits for; it waits for the transactions that use the partition, including writers of that day, to
end), then in one transaction the rollup rows of that day (vpnmonitor.rollups.drop_buckets) and the detached
table are dropped. A run stopped between the two leaves a detached table whose rollup buckets are still
there, which the next run drops; one stopped inside the detach is finished (DETACH ... FINALIZE) by the next.
Between the detach and the bucket drop (the time of one DELETE of a day's rollup rows), a read of a window
reaching into that expired day counts its rollup buckets without its raw rows.

A table may have rollups whose buckets are not whole days (one bucket for all time, e.g. the latest time a key
was seen): it registers the rollups to drop by bucket (register(..., rollups=...)) and an after_drop(using=)
that keeps the others exact, which every run calls once its days are dropped (so a run stopped before it is made
up by the next).
"""

import datetime as dt
import logging
import zlib
from dataclasses import dataclass

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.migrations.operations.base import Operation
from django.utils import timezone

from vpnmonitor import rollups

logger = logging.getLogger(__name__)

# Days after today whose partitions create_ahead() makes (and the migration, with the days that have rows).
AHEAD = 3
_UNIX_DAY = dt.date(1970, 1, 1)
# Advisory lock keys: this namespace, and a hash of the table's name.
_LOCK_NAMESPACE = 0x70617274


@dataclass(frozen=True)
class ClosedDayIndex:
    """An index of each partition whose day is over, not of the partitioned table: one that reads of past days
    need, but that the day being written would pay for on every row (a btree on a column whose values arrive in
    no order). index_closed builds it; reads of the current day do without it. Named <partition>_<suffix>."""

    suffix: str
    columns: tuple

    def name(self, table, number):
        """Its name on the table's partition of day `number`."""
        return f"{partition_name(table, number)}_{self.suffix}"


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by day on a time column (see the module docstring)."""

    model: str
    time: str
    # The rollups whose buckets drop_before drops with each day (None: every rollup of the model), and what to do
    # once days are dropped (e.g. keep rollups exact that cannot be dropped by bucket), called as after_drop(using=).
    rollups: tuple | None = None
    after_drop: object = None
    closed_indexes: tuple = ()

    @property
    def model_class(self):
        return apps.get_model(self.model)

    @property
    def table(self):
        return self.model_class._meta.db_table


_registry: dict[str, Partitioned] = {}


def register(model, time, *, rollups=None, after_drop=None, closed_indexes=()):
    """Declare a table partitioned by day on `time` (call from an AppConfig.ready()); its migration converts it.

    rollups: the rollups of the model whose buckets retention drops with each day, when not all of them have
    buckets that fit whole days; the others must be kept exact by after_drop(using=), which drop_before calls
    after dropping days (a rollup of one bucket for all time, say, drops the keys no row is left of).
    closed_indexes: ClosedDayIndex of the partitions whose day is over (see index_closed)."""
    _registry[model] = declared = Partitioned(model, time, None if rollups is None else tuple(rollups), after_drop,
                                              tuple(closed_indexes))
    return declared


def declared(model):
    """The declaration of a model (class or label), or None."""
    label = model if isinstance(model, str) else model._meta.label
    return _registry.get(label)


def day_number(moment):
    """The UTC day of a time as days since 1970-01-01 (a naive time counts in the default time zone, as stored)."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return (moment.astimezone(dt.UTC).date() - _UNIX_DAY).days


def day_start(number):
    return dt.datetime.combine(_UNIX_DAY + dt.timedelta(days=number), dt.time(), tzinfo=dt.UTC)


def partition_name(table, number):
    date = _UNIX_DAY + dt.timedelta(days=number)
    return f"{table}_p{date.year:04d}{date.month:02d}{date.day:02d}"


def _bound(number):
    """A day's start as a timestamptz literal (the day after 9999-12-31 included)."""
    try:
        return f"{_UNIX_DAY + dt.timedelta(days=number)} 00:00:00+00"
    except OverflowError:
        return "10000-01-01 00:00:00+00"


def _lock_key(table):
    return zlib.crc32(table.encode()) - 2**31


# What this process knows: {(database name, table): set of day numbers attached, or None when not partitioned}.
_known: dict = {}


def _cache_key(connection, table):
    return (connection.settings_dict["NAME"], table)


def forget(table=None):
    """Drop what this process knows of a table's partitions (or of every table's)."""
    for key in list(_known):
        if table is None or key[1] == table:
            del _known[key]


def partitioned(model, *, using=DEFAULT_DB_ALIAS):
    """Whether the model's table is partitioned by day here (PostgreSQL, declared and migrated)."""
    connection = connections[using]
    if connection.vendor != "postgresql" or declared(model) is None:
        return False
    return _state(connection, model._meta.db_table) is not None


def _state(connection, table):
    key = _cache_key(connection, table)
    if key not in _known:
        days = attached(connection, table)
        if connection.in_atomic_block and days is not None:
            # Partitions made in this transaction may be rolled back: known from the catalog, not kept.
            return days
        _known[key] = days
    return _known[key]


def attached(connection, table):
    """The day numbers of the partitions attached to a table (not being detached), or None when it is not
    partitioned."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
        if row is None or row[0] != "p":
            return None
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND NOT i.inhdetachpending", [table])
        return {_number(table, name) for (name,) in cursor.fetchall()} - {None}


def _number(table, name):
    prefix = f"{table}_p"
    digits = name[len(prefix):]
    if not name.startswith(prefix) or len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return (dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) - _UNIX_DAY).days
    except ValueError:
        return None


def ensure(model, days, *, using=DEFAULT_DB_ALIAS):
    """Make the partitions of these days (day numbers, see day_number) that do not exist yet; a no-op on SQLite,
    for a table that is not partitioned, and for days this process knows exist.

    Call before the transaction that inserts the rows: a partition is made in a short transaction of its own
    (when called inside one, it commits with it)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    table = model._meta.db_table
    known = _state(connection, table)
    if known is None or known.issuperset(days):
        return
    missing = set(days) - known
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, _lock_key(table)])
        found = attached(connection, table)
        for number in sorted(missing - found):
            create(connection, table, number)
    made = found | missing

    def learn():
        _known.setdefault(_cache_key(connection, table), set()).update(made)

    if connection.in_atomic_block:
        transaction.on_commit(learn, using=using)
    else:
        learn()


def create(connection, table, number):
    """Make one day's partition: an empty table like the parent, then attached (see the module docstring).

    A table of that name left detached by an interrupted prune, with its rows and its rollup buckets, is attached
    again as it is."""
    quote = connection.ops.quote_name
    name = partition_name(table, number)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {quote(name)} "
                       f"(LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)")
        cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} "
                       f"FOR VALUES FROM ('{_bound(number)}') TO ('{_bound(number + 1)}')")
    logger.info("partitions: made %s", name)


def write(model, insert, days, *, using=DEFAULT_DB_ALIAS):
    """insert() and what it returns: a write of rows in its own transaction (or savepoint) that may need new
    partitions. The write is tried as it is, so a batch of days that have partitions (made ahead, or by an
    earlier batch) costs nothing more; when it fails for want of a partition (a day not made yet, or dropped by
    retention meanwhile), the partitions of days() (the day numbers its rows touch) are made and it runs once
    more."""
    try:
        return insert()
    except IntegrityError as error:
        if not _no_partition(error):
            raise
    forget(model._meta.db_table)
    ensure(model, days(), using=using)
    return insert()


def _no_partition(error):
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    return (getattr(cause, "sqlstate", None) == "23514" and diag is not None
            and (diag.message_primary or "").startswith("no partition of relation"))


def create_ahead(*, now=None, using=DEFAULT_DB_ALIAS):
    """Make today's partition and the next AHEAD days' for every declared table; returns how many tables."""
    today = day_number(now or timezone.now())
    done = 0
    for entry in _registry.values():
        model = entry.model_class
        if partitioned(model, using=using):
            ensure(model, set(range(today, today + AHEAD + 1)), using=using)
            done += 1
    return done


CLOSED_AFTER = dt.timedelta(hours=1)
"""A day is over, for its closed-day indexes, this long after it ends (lines of its last minutes arrive late)."""


def index_closed(*, now=None, using=DEFAULT_DB_ALIAS):
    """Build the closed-day indexes (ClosedDayIndex) that partitions of days over for CLOSED_AFTER lack, for every
    declared table (a beat task, hourly); returns how many it built. A no-op on SQLite, whose tables keep every
    index."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    before = day_number((now or timezone.now()) - CLOSED_AFTER)
    built = 0
    for entry in _registry.values():
        if entry.closed_indexes and partitioned(entry.model_class, using=using):
            built += build_closed_indexes(connection, entry.table, entry.closed_indexes, before)
    return built


def build_closed_indexes(connection, table, indexes, before):
    """Build `indexes` (ClosedDayIndex) on the table's partitions of days before day number `before` that lack
    them. Outside a transaction each is built CONCURRENTLY (reads and writes of the day go on); an invalid one
    that an interrupted concurrent build left is dropped and built again."""
    quote = connection.ops.quote_name
    concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
    built = 0
    for number in sorted(day for day in (attached(connection, table) or ()) if day < before):
        partition = partition_name(table, number)
        for index in indexes:
            name = index.name(table, number)
            with connection.cursor() as cursor:
                cursor.execute("SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)", [name])
                row = cursor.fetchone()
                if row is not None and row[0]:
                    continue
                if row is not None:
                    cursor.execute(f"DROP INDEX{concurrently} IF EXISTS {quote(name)}")
                columns = ", ".join(quote(column) for column in index.columns)
                cursor.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} ON {quote(partition)} "
                               f"({columns})")
            built += 1
            logger.info("partitions: indexed %s (%s)", partition, ", ".join(index.columns))
    return built


# Retention ----------------------------------------------------------------------------------------------


def drop_before(model, cutoff, *, using=DEFAULT_DB_ALIAS):
    """Drop every partition whose day ends at or before `cutoff`, with its days' rollup buckets; returns how many
    rows they held. See the module docstring for the steps and their locks.

    DETACH ... CONCURRENTLY cannot run in a transaction: called inside one (a test, a caller's atomic block),
    the partition is detached plainly, which takes an ACCESS EXCLUSIVE lock on the table until it commits."""
    connection = connections[using]
    table = model._meta.db_table
    quote = connection.ops.quote_name
    last = day_number(cutoff) - 1  # the last day that ends by the cutoff
    entry = declared(model)
    chosen = entry.rollups if entry is not None else None
    rollups.check_droppable(model, day_start(last), day_start(last + 1), rollups=chosen)
    concurrently = not connection.in_atomic_block
    total = 0
    with _table_lock(connection, table):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(%s)", [table])
            children = cursor.fetchall()
            # Tables left detached by an interrupted run.
            cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND relname "
                           "LIKE %s AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%s))",
                           [_like(f"{table}_p") + "%", table])
            leftovers = [name for (name,) in cursor.fetchall()]
        for name in leftovers:
            number = _number(table, name)
            if number is not None and number <= last:
                total += _drop_detached(connection, model, name, number, chosen)
        for name, pending in sorted(children):
            number = _number(table, name)
            if number is None or number > last:
                continue
            with connection.cursor() as cursor:
                if pending:
                    cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(name)} FINALIZE")
                else:
                    cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(name)}"
                                   + (" CONCURRENTLY" if concurrently else ""))
            _discard(connection, table, number)
            total += _drop_detached(connection, model, name, number, chosen)
        if entry is not None and entry.after_drop is not None:
            # Every run, so that one stopped before this step is made up by the next.
            entry.after_drop(using=connection.alias)
    return total


def _like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _discard(connection, table, number):
    known = _known.get(_cache_key(connection, table))
    if known is not None:
        known.discard(number)


def _drop_detached(connection, model, name, number, chosen=None):
    """Drop a detached day's rollup buckets and the table, in one transaction; returns the rows it held."""
    quote = connection.ops.quote_name
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            # Counted before it goes (what the prune reports); nothing writes to a detached table.
            cursor.execute(f"SELECT count(*) FROM {quote(name)}")
            rows = cursor.fetchone()[0]
        rollups.drop_buckets(model, day_start(number), day_start(number + 1), using=connection.alias, rollups=chosen)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote(name)}")
    logger.info("partitions: dropped %s (%s rows)", name, rows)
    return rows


class _table_lock:
    """The table's advisory lock, which the partition makers take per transaction: held by this session across
    the prune's transactions, or to the end of the caller's transaction when called inside one."""

    def __init__(self, connection, table):
        self.connection, self.key = connection, _lock_key(table)
        self.session = not connection.in_atomic_block

    def __enter__(self):
        function = "pg_advisory_lock" if self.session else "pg_advisory_xact_lock"
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", [_LOCK_NAMESPACE, self.key])

    def __exit__(self, *exc):
        if self.session:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, self.key])


# The migration ------------------------------------------------------------------------------------------


class PartitionByDay(Operation):
    """Turn a model's table into one partitioned by RANGE on a time column, a partition per UTC day, keeping its
    rows, indexes, checks, name and id sequence (PostgreSQL; elsewhere nothing happens). The model's state does
    not change. Reversible: the backwards step makes a plain table again.

    The table is locked (ACCESS EXCLUSIVE) while its rows are copied and its indexes built again: run it while
    nothing needs the table. No foreign key may point to the table (the new key is (id, time))."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, model_name, time):
        self.model_name, self.time = model_name, time

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"model_name": self.model_name, "time": self.time}

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if schema_editor.connection.vendor == "postgresql":
            partition_table(schema_editor, model, self.time)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if schema_editor.connection.vendor == "postgresql":
            unpartition_table(schema_editor, model)

    def describe(self):
        return f"Partition {self.model_name} by day of {self.time} (PostgreSQL)"

    @property
    def migration_name_fragment(self):
        return f"{self.model_name.lower()}_partitions"


def _relkind(cursor, table):
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
    row = cursor.fetchone()
    return row and row[0]


def _swap(schema_editor, model, *, partition_by, primary_key, days=()):
    """Copy a table into a new one (partitioned when partition_by is given, with partitions for `days`), then put
    the new one in its place: same name, checks, defaults, indexes and identity sequence position."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    table = model._meta.db_table
    pk = model._meta.pk.column
    new = f"{table}__new"
    columns = ", ".join(quote(field.column) for field in model._meta.local_concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute("SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                       "AND confrelid = to_regclass(%s)", [table])
        referencing = [name for (name,) in cursor.fetchall()]
        if referencing:
            raise ValueError(f"{table}: foreign keys of {', '.join(referencing)} point to it")
        cursor.execute(f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = to_regclass(%s) "
            "AND NOT x.indisprimary ORDER BY x.indexrelid", [table])
        indexes = [definition for (definition,) in cursor.fetchall()]
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last_value, is_called = cursor.fetchone()
        cursor.execute(
            f"CREATE TABLE {quote(new)} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            f"INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
            + (f" PARTITION BY RANGE ({quote(partition_by)})" if partition_by else ""))
        for number in sorted(days):
            name = partition_name(table, number)
            cursor.execute(f"CREATE TABLE {quote(name)} PARTITION OF {quote(new)} "
                           f"FOR VALUES FROM ('{_bound(number)}') TO ('{_bound(number + 1)}')")
        cursor.execute(f"INSERT INTO {quote(new)} ({columns}) SELECT {columns} FROM {quote(table)}")
        cursor.execute(f"DROP TABLE {quote(table)}")
        cursor.execute(f"ALTER TABLE {quote(new)} RENAME TO {quote(table)}")
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk])
        # The new identity sequence takes the old one's name (gone with the old table).
        old_name = sequence.rsplit(".", 1)[-1].strip('"')
        cursor.execute(f"ALTER SEQUENCE {cursor.fetchone()[0]} RENAME TO {quote(old_name)}")
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s, %s)", [table, pk, last_value, is_called])
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(f'{table}_pkey')} PRIMARY KEY "
                       f"({', '.join(quote(column) for column in primary_key)})")
        for definition in indexes:
            # The definitions name the table as it was, which is the new one's name now.
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
    forget(table)


def partition_table(schema_editor, model, time):
    """PartitionByDay's forward step: the days that have rows (found by skipping through the time index) and the
    next AHEAD days get partitions."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    table = model._meta.db_table
    column = model._meta.get_field(time).column
    with connection.cursor() as cursor:
        if _relkind(cursor, table) == "p":
            return
        cursor.execute(f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"""
            WITH RECURSIVE day(start) AS (
                SELECT date_trunc('day', min({quote(column)}) AT TIME ZONE 'UTC') FROM {quote(table)}
                UNION ALL
                SELECT (SELECT date_trunc('day', min(t.{quote(column)}) AT TIME ZONE 'UTC') FROM {quote(table)} t
                        WHERE t.{quote(column)} >= (day.start + interval '1 day') AT TIME ZONE 'UTC')
                FROM day WHERE day.start IS NOT NULL
            )
            SELECT start::date FROM day WHERE start IS NOT NULL""")
        days = {(start - _UNIX_DAY).days for (start,) in cursor.fetchall()}
    today = day_number(timezone.now())
    days |= set(range(today, today + AHEAD + 1))
    _swap(schema_editor, model, partition_by=column, primary_key=(model._meta.pk.column, column), days=days)


def unpartition_table(schema_editor, model):
    """PartitionByDay's backward step: a plain table with every row, keyed by id alone."""
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, model._meta.db_table) != "p":
            return
    _swap(schema_editor, model, partition_by=None, primary_key=(model._meta.pk.column,))
