"""Rollups: counts and sums of a raw table per time bucket and dimensions, kept exact at write time.

An app declares each rollup once (Rollup: its source model, time column, bucket step, dimensions and
measures, and the model that holds it) and registers it, from its AppConfig.ready() or its rollups module.
The core owns the rest, the same on SQLite and PostgreSQL:

- bucketing: epoch-aligned steps, as vpnmonitor.timeseries buckets them (in Python and in SQL);
- the write path: one upsert, INSERT ... ON CONFLICT DO UPDATE combining every measure (adding, or
  keeping the larger or smaller value), fed by rows in memory (add), by counts a fast writer made itself
  (apply, e.g. next to a COPY), by rows already in the table aggregated in SQL (counts_in) and by a
  writer's own grouped SELECT (upsert_select); deletes aggregate the rows to be deleted in SQL and
  subtract them (subtract, delete), and rows whose first measure reaches zero are dropped (only for
  rollups whose measures are all sums: a maximum or minimum cannot be taken back); when a whole range of
  source rows goes at once (a day's partition dropped, see vpnmonitor.partitions), the rollups' buckets in
  that range are deleted whole (drop_buckets), which needs every bucket to fit whole in the range;
- one read planner: a window's whole buckets from the rollup, its partial edges from the raw table
  (plan, total, grouped, or window_rows for a caller's own GROUP BY or COUNT(DISTINCT)), in one statement so
  both are read from one snapshot.

A dimension may be empty (NULL): the rollup model then declares its key with RollupKey, a unique key in which
NULLs are equal (NULLS NOT DISTINCT on PostgreSQL, an index on COALESCE(column, x'') on SQLite, where no text,
number or time equals an empty blob), so an empty dimension is one row per bucket like any other value, stored
and read back as NULL.

Services are the only writers of a source table that has rollups: they insert and delete through these
functions in the same transaction as the rows themselves.
"""

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, F, Func, Max, Min, Q, Sum, UniqueConstraint, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from vpnmonitor.timeseries import (  # noqa: F401 - BucketStart for declarations
    EPOCH,
    BucketStart,
    EpochBucket,
    floor_time,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
_US = dt.timedelta(microseconds=1)
# Rows per statement when deleting or subtracting by primary key.
CHUNK = 5000


@dataclass(frozen=True)
class Dimension:
    """One key column of a rollup.

    name: the rollup model's field. field: the source model's field it copies (default: name).
    A computed dimension gives both forms of its rule: compute(row) in Python (row is a mapping of the source
    fields named in `uses`) and expression() in SQL (a Django expression over the source model), which must
    agree. required: source rows whose field is empty (None or "") are not counted in this rollup.
    """

    name: str
    field: str | None = None
    compute: Callable | None = None
    expression: Callable | None = None
    uses: tuple = ()
    required: bool = False

    @property
    def source(self):
        return self.field or self.name

    def sql(self):
        return self.expression() if self.expression is not None else F(self.source)


COMBINES = ("sum", "max", "min")


@dataclass(frozen=True)
class Measure:
    """One value column of a rollup: a count of source rows (field None) or the sum of a source field.

    when (a Q over the source) and test (the same condition on a row mapping, in Python) restrict it to some
    rows, e.g. Measure("blocked", when=Q(blocked=True), test=lambda row: row["blocked"], uses=("blocked",)).

    combine: how a row's values come together, "sum" (the default), or "max" / "min" of a field (a highest
    value, a first or last time seen). cap: a sum that saturates at this value instead of overflowing (e.g.
    the bigint maximum). A rollup with a max or min measure only grows: it cannot be subtracted from.
    """

    name: str
    field: str | None = None
    when: Q | None = None
    test: Callable | None = None
    uses: tuple = ()
    combine: str = "sum"
    cap: int | None = None

    def __post_init__(self):
        if self.combine not in COMBINES:
            raise ValueError(f"Measure {self.name}: combine must be one of {', '.join(COMBINES)}, not {self.combine!r}")
        if self.combine != "sum" and (self.field is None or self.cap is not None or self.when is not None
                                      or self.test is not None):
            # Every row has a value to compare: no row may leave a maximum or minimum empty.
            raise ValueError(f"Measure {self.name}: a {self.combine} measure needs a field and takes no cap or "
                             "condition")

    def aggregate(self):
        """The raw-table aggregate, for SQL reads of source rows."""
        if self.combine == "max":
            return Max(self.field, filter=self.when)
        if self.combine == "min":
            return Min(self.field, filter=self.when)
        if self.field is None:
            return Count("pk", filter=self.when)
        return Coalesce(Sum(self.field, filter=self.when), Value(0))

    def value(self, row):
        if self.test is not None and not self.test(row):
            return 0
        if self.field is None:
            return 1
        return (row[self.field] or 0) if self.combine == "sum" else row[self.field]

    def merge(self, current, new):
        """Two values of this measure combined, in Python (as the upsert combines them in SQL)."""
        if self.combine == "sum":
            return current + new
        return max(current, new) if self.combine == "max" else min(current, new)

    def final(self, value):
        """A combined value as stored: a capped sum saturates at its cap."""
        return value if self.cap is None else min(value, self.cap)

    def update_sql(self, current, new, vendor):
        """The SQL of ON CONFLICT DO UPDATE for this measure: current (the row's column) and new (EXCLUDED's)."""
        if self.combine == "sum":
            if self.cap is None:
                return f"{current} + {new}"
            if vendor == "postgresql":
                # numeric: the sum may pass the bigint maximum before it is capped.
                return f"LEAST({current}::numeric + {new}, {int(self.cap)})::bigint"
            # SQLite: an integer overflow turns into a REAL, which MIN() then caps.
            return f"MIN({current} + {new}, {int(self.cap)})"
        if vendor == "postgresql":
            return f"{'GREATEST' if self.combine == 'max' else 'LEAST'}({current}, {new})"
        # SQLite's two-argument MAX()/MIN() are its GREATEST/LEAST.
        return f"{'MAX' if self.combine == 'max' else 'MIN'}({current}, {new})"


def update_clause(measures, columns, table, *, vendor, excluded="EXCLUDED"):
    """The SET list of ON CONFLICT DO UPDATE for measures stored in columns (quoted names, same order):
    each column combined with the new row's as its measure says."""
    return ", ".join(f"{column} = " + measure.update_sql(f"{table}.{column}", f"{excluded}.{column}", vendor)
                     for measure, column in zip(measures, columns, strict=True))


class _KeyPart(Func):
    """A nullable key column in SQLite's unique index of a rollup: NULL as an empty blob, equal to no other value."""

    template = "COALESCE(%(expressions)s, x'')"


class RollupKey(UniqueConstraint):
    """The unique key of a rollup model whose dimensions may be NULL: NULLs are equal in it, so the upsert finds
    the row of an empty dimension as it finds any other.

    PostgreSQL: UNIQUE NULLS NOT DISTINCT (15 and later). SQLite, which has no such option: a unique index on
    the columns, each nullable one as COALESCE(column, x''), which the upsert names as its conflict target.
    """

    def __init__(self, *, fields, name):
        super().__init__(fields=fields, name=name)

    def _for(self, model, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            return UniqueConstraint(fields=self.fields, name=self.name, nulls_distinct=False)
        meta = model._meta
        return UniqueConstraint(*(_KeyPart(F(name)) if meta.get_field(name).null else F(name) for name in self.fields),
                                name=self.name)

    def constraint_sql(self, model, schema_editor):
        return self._for(model, schema_editor).constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        return self._for(model, schema_editor).create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        return self._for(model, schema_editor).remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        # Written only by the core's upsert, which never inserts a second row of a key.
        return None


def conflict_target(model, names, connection):
    """The ON CONFLICT column list of a rollup's key: on SQLite a nullable column as its RollupKey indexes it."""
    meta = model._meta
    quote = connection.ops.quote_name
    parts = []
    for name in names:
        field = meta.get_field(name)
        column = quote(field.column)
        parts.append(f"COALESCE({column}, x'')" if field.null and connection.vendor != "postgresql" else column)
    return ", ".join(parts)


@dataclass(frozen=True, eq=False)
class Rollup:
    """A rollup's declaration (see the module docstring).

    keep: for a rollup kept only for some buckets, keep(buckets, using) -> the buckets among them that are
    kept (e.g. hours sealed); the core calls it for each write before it upserts any rollup row, so it may
    take locks that order the write against whoever opens a bucket. Rows of other buckets are left alone.
    """

    name: str
    source: str
    model: str
    time: str
    step: dt.timedelta
    dimensions: tuple
    measures: tuple = (Measure("count"),)
    bucket: str = "bucket"
    keep: Callable | None = None

    @property
    def source_model(self):
        return _model(self.source)

    @property
    def rollup_model(self):
        return _model(self.model)

    @property
    def key(self):
        """The rollup model's key fields, in the order of a counts key: bucket, then the dimensions."""
        return (self.bucket, *(dimension.name for dimension in self.dimensions))

    @property
    def subtractable(self):
        """Whether rows can be taken back out: only when every measure is a plain sum."""
        return all(measure.combine == "sum" and measure.cap is None for measure in self.measures)

    @property
    def uses(self):
        """The source fields this rollup reads of a row in memory."""
        names = [self.time]
        for part in (*self.dimensions, *self.measures):
            names.extend(part.uses or ((part.source,) if isinstance(part, Dimension) and part.compute is None
                                       else ((part.field,) if isinstance(part, Measure) and part.field else ())))
        for dimension in self.dimensions:
            if dimension.required:
                names.append(dimension.source)
        return tuple(dict.fromkeys(names))

    def bucket_of(self, moment):
        """The start of the bucket of a time (an aware datetime, or naive in the default time zone)."""
        return floor_time(_aware(moment), self.step)

    def raw_filter(self):
        """The source rows this rollup counts (those whose required dimensions are not empty)."""
        where = Q()
        meta = self.source_model._meta
        for dimension in self.dimensions:
            if dimension.required:
                where &= Q(**{f"{dimension.source}__isnull": False})
                if meta.get_field(dimension.source).get_internal_type() in ("CharField", "TextField"):
                    where &= ~Q(**{dimension.source: ""})
        return where

    # Reads ---------------------------------------------------------------------------------------------

    def plan(self, window, *, now=None):
        return plan(window, self.step, now=now)

    def total(self, plan, *, raw, rows, measure=None, finer=None):
        return total(self, plan, raw=raw, rows=rows, measure=measure, finer=finer)

    def grouped(self, plan, by, *, raw, rows, measure=None, finer=None, limit=None, label=None):
        return grouped(self, plan, by, raw=raw, rows=rows, measure=measure, finer=finer, limit=limit, label=label)


_registry: dict[str, Rollup] = {}


def register(rollup):
    """Declare a rollup (call from an AppConfig.ready() or the app's rollups module); returns it."""
    _registry[rollup.name] = rollup
    return rollup


def get(name):
    return _registry[name]


def of(source):
    """The registered rollups of a source model (a model class or label), in registration order."""
    model = _model(source)
    return [rollup for rollup in _registry.values() if rollup.source_model is model]


def _model(model):
    """A model class from a class or an "app_label.Model" label."""
    return apps.get_model(model) if isinstance(model, str) else model


def _aware(moment):
    if timezone.is_naive(moment):
        # Django stores a naive time as a time in the default time zone, so it is counted as one too.
        return timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


# Writes ------------------------------------------------------------------------------------------------


def _mapping(row, names):
    if isinstance(row, Mapping):
        return row
    # A model instance: each field as the database will hold it.
    meta = type(row)._meta
    return {name: meta.get_field(name).to_python(getattr(row, name)) for name in names}


def count_rows(rollup, rows):
    """Counter of the rollup's keys -> measures (an int for a rollup of one measure, else a tuple) of rows in
    memory: mappings of source field names to values as stored, or source model instances."""
    step, time, names = rollup.step, rollup.time, rollup.uses
    required = [dimension.source for dimension in rollup.dimensions if dimension.required]
    getters = [
        dimension.compute if dimension.compute is not None else (lambda row, name=dimension.source: row[name])
        for dimension in rollup.dimensions
    ]
    measures = rollup.measures
    single = len(measures) == 1 and measures[0].field is None and measures[0].test is None
    summed = rollup.subtractable
    buckets = {}
    counts = Counter()
    for row in rows:
        row = _mapping(row, names)
        if any(row[name] is None or row[name] == "" for name in required):
            continue
        moment = row[time]
        if moment.tzinfo is None:
            moment = _aware(moment)
        # Whole steps since the epoch (exact integer arithmetic), then one datetime per bucket.
        index = (moment - EPOCH) // step
        bucket = buckets.get(index)
        if bucket is None:
            bucket = buckets[index] = EPOCH + index * step
        key = (bucket, *(get(row) for get in getters))
        if single:
            counts[key] += 1
        else:
            values = tuple(measure.value(row) for measure in measures)
            previous = counts.get(key)
            if previous is None:
                counts[key] = values
            elif summed:
                counts[key] = tuple(map(int.__add__, previous, values))
            else:
                counts[key] = tuple(m.merge(a, b) for m, a, b in zip(measures, previous, values, strict=True))
    if not summed:
        for key, values in counts.items():
            counts[key] = tuple(m.final(v) for m, v in zip(measures, values, strict=True))
    return counts


def merge(rollup, into, counts):
    """Combine counts into `into` (both {key: measures} of the rollup: a tuple, or a bare value for a rollup of one
    measure, as count_rows and the writers' own counters make them), each measure as it combines: the counts of
    several parts of one write, applied once (a key in every part is written once). Returns `into`."""
    if not into:
        into.update(counts)
        return into
    measures = rollup.measures
    if len(measures) == 1 and measures[0].combine == "max" and counts:
        # A writer's parts in time order: each latest time is at least every one before it, and replaces it.
        newest, oldest = max(into.values()), min(counts.values())
        if not isinstance(newest, tuple) and not isinstance(oldest, tuple) and oldest >= newest:
            into.update(counts)
            return into
    summed = rollup.subtractable
    # Keys new to `into` are copied as they are; only the keys both hold are combined one by one.
    both = {key: into[key] for key in counts.keys() & into.keys()}
    into.update(counts)
    for key, current in both.items():
        value = counts[key]
        if not isinstance(value, tuple):
            into[key] = measures[0].final(measures[0].merge(current, value))
        elif summed:
            into[key] = tuple(map(int.__add__, current, value))
        else:
            into[key] = tuple(m.final(m.merge(a, b)) for m, a, b in zip(measures, current, value, strict=True))
    return into


def add(source, rows, *, using=DEFAULT_DB_ALIAS, rollups=None):
    """Add rows in memory (mappings or instances, see count_rows) to every rollup of the source model (or to
    the rollups given). Call in the transaction that inserts them."""
    rows = rows if isinstance(rows, list) else list(rows)
    chosen = of(source) if rollups is None else rollups
    apply({rollup: _deferred(rollup, rows) for rollup in chosen}, using=using)


def _deferred(rollup, rows):
    if rollup.keep is None:
        return count_rows(rollup, rows)
    return Deferred(lambda kept: Counter({key: n for key, n in count_rows(rollup, rows).items() if key[0] in kept}),
                    buckets=lambda: {rollup.bucket_of(_mapping(row, (rollup.time,))[rollup.time]) for row in rows})


@dataclass(frozen=True)
class Deferred:
    """The counts of a rollup kept only for some buckets (Rollup.keep), made once the kept buckets are known.

    count(kept) -> Counter of the rows in those buckets; buckets() -> every bucket the write touches."""

    count: Callable
    buckets: Callable


@dataclass(frozen=True)
class Statement:
    """A rollup's upsert encoded ahead of the write (prepare): the SQL and parameters apply() runs."""

    sql: str
    params: list


def apply(counts, *, using=DEFAULT_DB_ALIAS, growing=False):
    """Add counts (negative to subtract) to their rollups: {Rollup: Counter, Deferred or Statement}.

    The buckets of rollups with a `keep` rule are settled first, before any rollup row is locked; then each
    rollup's rows are upserted. Call in the transaction that writes the source rows.

    growing: the counts only add (a writer's new rows). On PostgreSQL the upserts are then sent in pipeline
    mode: each statement is on its way while the next one's rows are encoded, rather than each waiting for the
    one before it to be done."""
    kept = {}
    for rollup, value in counts.items():
        if isinstance(value, Deferred):
            buckets = value.buckets()
            kept[rollup] = rollup.keep(buckets, using=using) if buckets else set()
    connection = connections[using]
    pipelined = growing and connection.vendor == "postgresql"
    if pipelined:
        connection.ensure_connection()
    with connection.connection.pipeline() if pipelined else contextlib.nullcontext():
        for rollup, value in counts.items():
            if isinstance(value, Statement):
                with connection.cursor() as cursor:
                    cursor.execute(value.sql, value.params)
                continue
            if isinstance(value, Deferred):
                value = value.count(kept[rollup]) if kept[rollup] else None
            if value:
                upsert(rollup, value, using=using, growing=growing)


def prepare(rollup, counts, *, using=DEFAULT_DB_ALIAS):
    """Growing counts of a rollup (no `keep` rule) encoded for apply(growing=True) ahead of the write: a
    Statement on PostgreSQL, the counts as they are elsewhere. It reads the connection's settings only, never
    the database, so a writer can encode its next batch's upserts in another thread while it stores this one."""
    if rollup.keep is not None:
        raise ValueError(f"Rollup {rollup.name} is kept for some buckets: its counts are made at the write")
    connection = connections[using]
    if connection.vendor != "postgresql":
        return counts
    items = _items(rollup, counts, growing=True)[0]
    return Statement(*_pg_upsert(rollup, items, connection)) if items else Counter()


def _check_coarser(fine, coarse):
    if not (fine.subtractable and coarse.subtractable and fine.keep is None and coarse.keep is None
            and fine.dimensions == coarse.dimensions
            and [m.name for m in fine.measures] == [m.name for m in coarse.measures]
            and coarse.step % fine.step == dt.timedelta(0)):
        raise ValueError(f"Rollup {coarse.name} is not a coarser step of {fine.name}: it needs the same dimensions "
                         "and plain sums, and a step that is a multiple of the other's")


def coarsen(fine, coarse, counts):
    """Counts of `fine` summed into the buckets of `coarse`, in Python: a rollup of the same dimensions and plain
    sums whose step is a multiple of fine's (whole days of an hourly rollup)."""
    _check_coarser(fine, coarse)
    step = coarse.step
    starts = {}
    out = Counter()
    for (bucket, *key), values in counts.items():
        start = starts.get(bucket)
        if start is None:
            start = starts[bucket] = floor_time(bucket, step)
        key = (start, *key)
        previous = out.get(key)
        out[key] = values if previous is None else (
            tuple(map(int.__add__, previous, values)) if isinstance(values, tuple) else previous + values)
    return out


def prepare_coarser(fine, coarse, prepared, *, using=DEFAULT_DB_ALIAS):
    """What prepare(fine, counts) made, added to `coarse` as well (see coarsen). On PostgreSQL a Statement that
    sums the same parameters into coarse's buckets in SQL, so nothing more is encoded or sent; elsewhere the
    counts coarsened in Python."""
    _check_coarser(fine, coarse)
    if not isinstance(prepared, Statement):
        return coarsen(fine, coarse, prepared) if prepared else Counter()
    connection = connections[using]
    fields = _fields(fine)
    types = [_pg_array_type(f, connection) for f in fields]
    if types[0] != "timestamp with time zone":
        raise ValueError(f"Rollup {fine.name}: its bucket is not a time with a zone")
    width = len(fine.key)
    names = [f"c{i}" for i in range(len(fields))]
    quote = connection.ops.quote_name
    table = quote(coarse.rollup_model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _fields(coarse))
    arrays = ", ".join(f"%s::{_pg_array_param(kind)}[]" for kind in types)
    # Epoch-aligned steps, as floor_time takes them (a floor for times before the epoch too).
    step = coarse.step // _US
    start = f"TIMESTAMPTZ 'epoch' + (u.c0 - ((u.c0 %% {step}) + {step}) %% {step}) * INTERVAL '1 microsecond'"
    dimensions = [_pg_array_value(name, kind) for name, kind in zip(names[1:width], types[1:width], strict=True)]
    sums = [f"sum(u.{name})::bigint" for name in names[width:]]
    group = ", ".join(str(i) for i in range(1, width + 1))
    # Key order, byte order for text (as upsert sorts): positions, but a collation needs the expression.
    order = ", ".join(["1", *(f'{value} COLLATE "C"' if kind == "text" else str(i) for i, (value, kind)
                              in enumerate(zip(dimensions, types[1:width], strict=True), 2))])
    sql = (f"INSERT INTO {table} ({columns}) SELECT {', '.join([start, *dimensions, *sums])} "
           f"FROM unnest({arrays}) AS u({', '.join(names)}) GROUP BY {group} ORDER BY {order} "
           f"{_on_conflict(coarse, connection, table)}")
    return Statement(sql, prepared.params)


def _items(rollup, counts, *, growing):
    """([(key, measures)], buckets with counts to subtract) of counts, keys with nothing to add left out."""
    width = len(rollup.measures)
    items = []
    negative = set()
    summed = rollup.subtractable
    sums = [i for i, measure in enumerate(rollup.measures) if measure.combine == "sum"]
    for key, value in counts.items():
        values = value if isinstance(value, tuple) else (value,) if width == 1 else tuple(value)
        if any(values):
            items.append((key, values))
            if summed:
                if min(values) < 0:
                    negative.add(key[0])
            elif sums and any(values[i] < 0 for i in sums):
                raise ValueError(_not_subtractable(rollup))
    if growing and negative:
        raise ValueError(f"Rollup {rollup.name}: counts to subtract were applied as growing")
    return items, negative


def _fields(rollup):
    meta = rollup.rollup_model._meta
    return [meta.get_field(name) for name in rollup.key] + [meta.get_field(m.name) for m in rollup.measures]


def _pg_upsert(rollup, items, connection):
    """(sql, params) of the upsert of items on PostgreSQL.

    The rows go as one array literal per column (psycopg adapting thousands of parameters one by one took
    longer than the upsert itself), inserted in key order: concurrent writers lock the rows they share in one
    order, so they never deadlock."""
    fields = _fields(rollup)
    quote = connection.ops.quote_name
    table = quote(rollup.rollup_model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    types = [_pg_array_type(f, connection) for f in fields]
    names = [f"c{i}" for i in range(len(fields))]
    arrays = ", ".join(f"%s::{_pg_array_param(kind)}[]" for kind in types)
    select = ", ".join(_pg_array_value(name, kind) for name, kind in zip(names, types, strict=True))
    # Byte order for text keys: any one order avoids deadlocks, and this one sorts several times faster than
    # the database's collation.
    order = ", ".join(f'{name} COLLATE "C"' if kind == "text" else name
                      for name, kind in zip(names[:len(rollup.key)], types, strict=False))
    by_column = zip(*((*key, *values) for key, values in items), strict=True)
    params = [_array_literal(values, kind) for values, kind in zip(by_column, types, strict=True)]
    sql = (f"INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({arrays}) AS u({', '.join(names)}) "
           f"ORDER BY {order} {_on_conflict(rollup, connection, table)}")
    return sql, params


def upsert(rollup, counts, *, using=DEFAULT_DB_ALIAS, growing=False):
    """The write of every rollup row: add each key's measures to its row (inserted at zero when missing).

    counts: {(bucket, *dimensions): int or tuple of measures}. Negative counts subtract; rows whose first
    measure reaches zero or less among the buckets subtracted from are then deleted."""
    items, negative = _items(rollup, counts, growing=growing)
    if not items:
        return
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(*_pg_upsert(rollup, items, connection))
        else:
            fields = _fields(rollup)
            quote = connection.ops.quote_name
            table = quote(rollup.rollup_model._meta.db_table)
            # Sorted keys, as on PostgreSQL.
            items.sort(key=_sort_key)
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(quote(f.column) for f in fields)}) VALUES ({placeholders}) "
                f"{_on_conflict(rollup, connection, table)}",
                [[f.get_db_prep_value(v, connection) for f, v in zip(fields, (*key, *values), strict=True)]
                 for key, values in items],
            )
    if negative:
        first = rollup.measures[0].name
        rollup.rollup_model._base_manager.using(using).filter(
            **{f"{first}__lte": 0, f"{rollup.bucket}__in": sorted(negative)}
        ).delete()


def _not_subtractable(rollup):
    names = ", ".join(f"{m.name} ({m.combine}{' capped' if m.cap is not None else ''})"
                      for m in rollup.measures if m.combine != "sum" or m.cap is not None)
    return (f"Rollup {rollup.name} cannot be subtracted from: its measures {names} are not plain sums; "
            "rebuild it instead")


def _on_conflict(rollup, connection, table):
    """ON CONFLICT (key) DO UPDATE SET each measure combined as it says."""
    meta = rollup.rollup_model._meta
    quote = connection.ops.quote_name
    conflict = conflict_target(rollup.rollup_model, rollup.key, connection)
    columns = [quote(meta.get_field(m.name).column) for m in rollup.measures]
    update = update_clause(rollup.measures, columns, table, vendor=connection.vendor)
    if any(measure.combine == "sum" for measure in rollup.measures):
        return f"ON CONFLICT ({conflict}) DO UPDATE SET {update}"
    # Only maxima and minima: a row is updated only when one of its values changes (a time seen again that is not
    # later than the stored one changes nothing), so no update leaves a dead row version behind for nothing.
    distinct = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
    changed = " OR ".join(
        f"{table}.{column} {distinct} " + measure.update_sql(f"{table}.{column}", f"EXCLUDED.{column}",
                                                             connection.vendor)
        for measure, column in zip(rollup.measures, columns, strict=True))
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {update} WHERE {changed}"


def upsert_select(rollup, sql, params=(), *, using=DEFAULT_DB_ALIAS):
    """The upsert fed by a writer's own SELECT (e.g. of a staging table it COPYed a batch into): sql gives
    the rollup's key columns, then its measures, in declaration order, one row per key, in key order (so
    concurrent writers lock rows in one order). Returns how many rows it inserted or updated.

    For growing only: a SELECT of negative sums would not drop rows at zero (use upsert for that)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(upsert_select_sql(rollup, sql, connection), params)
        return cursor.rowcount


def upsert_select_sql(rollup, sql, connection):
    """The statement upsert_select runs (for a writer that runs it on its own connection)."""
    meta = rollup.rollup_model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = (*rollup.key, *(measure.name for measure in rollup.measures))
    columns = ", ".join(quote(meta.get_field(name).column) for name in names)
    if connection.vendor != "postgresql":
        # SQLite: a WHERE keeps ON CONFLICT from being read as part of the SELECT.
        sql = f"SELECT * FROM ({sql}) WHERE true"
    return f"INSERT INTO {table} ({columns}) {sql} {_on_conflict(rollup, connection, table)}"


def _sort_key(item):
    return tuple((value is None, value) for value in item[0])


def _pg_array_type(model_field, connection):
    kind = model_field.db_type(connection)
    if kind.startswith(("varchar", "char")):
        return "text"
    return kind.split(" CHECK", 1)[0].split(" check", 1)[0]


def _pg_array_param(kind):
    """The array type a column's values are sent as: a time with its zone as microseconds since the epoch."""
    return "bigint" if kind == "timestamp with time zone" else kind


def _pg_array_value(name, kind):
    """The SQL of a column's value from its unnested parameter."""
    if kind == "timestamp with time zone":
        return f"TIMESTAMPTZ 'epoch' + u.{name} * INTERVAL '1 microsecond'"
    return f"u.{name}"


# Stands for NULL while a text array literal is escaped: a lone surrogate, which no text sent to PostgreSQL holds.
_NULL_TEXT = "\ud800"


def _array_literal(values, kind):
    """A PostgreSQL array literal of values of one column type (a sequence), built by str methods rather than
    value by value: text quoted and escaped; times with a zone as whole microseconds since the epoch (see
    _pg_array_value), other times quoted (they contain a space); numbers, addresses and booleans bare (they have
    no character that needs it)."""
    if kind == "text":
        if None in values:
            values = [_NULL_TEXT if value is None else value for value in values]
        # PostgreSQL text holds no NUL character: it separates the values while they are escaped all at once.
        text = "\0".join(values).replace("\\", "\\\\").replace('"', '\\"').replace("\0", '","')
        return ('{"' + text + '"}').replace(f'"{_NULL_TEXT}"', "NULL")
    if kind.startswith("timestamp"):
        # A batch's rows share a few buckets: each is spelled once. A naive time in a column with a zone is a time
        # in the default time zone, as Django stores it.
        zoned = kind == "timestamp with time zone"
        spelled = {value: "NULL" if value is None else str((_aware(value) - EPOCH) // _US) if zoned
                   else f'"{value}"' for value in set(values)}
        return "{" + ",".join(map(spelled.__getitem__, values)) + "}"
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


def counts_in(rollup, queryset, *, kept=None):
    """Counter of the rollup's keys -> measures of the source rows of a queryset, aggregated in SQL.

    kept: only the rows of these buckets (for a rollup with a `keep` rule)."""
    if kept is not None:
        if not kept:
            return Counter()
        queryset = queryset.filter(**{f"{rollup.time}__gte": min(kept), f"{rollup.time}__lt": max(kept) + rollup.step})
    rows = _grouped(rollup, queryset, EpochBucket)
    width = len(rollup.dimensions) + 1
    single = len(rollup.measures) == 1
    summed = rollup.subtractable
    counts = Counter()
    for row in rows.iterator(chunk_size=CHUNK):
        bucket = _from_epoch(row[0])
        if kept is not None and bucket not in kept:
            continue
        values = row[width:]
        if summed:
            counts[(bucket, *row[1:width])] = int(values[0]) if single else tuple(int(v) for v in values)
        else:
            values = tuple(m.final(int(v)) if m.combine == "sum" else v
                           for m, v in zip(rollup.measures, values, strict=True))
            counts[(bucket, *row[1:width])] = values[0] if single else values
    return counts


def _grouped(rollup, queryset, bucket):
    """The source rows of a queryset grouped by the rollup's key: values_list of the bucket, the dimensions and
    the measures, in that order. bucket: BucketStart (a time, to insert) or EpochBucket (seconds, to read).
    """
    queryset = queryset.filter(rollup.raw_filter()).order_by()
    names = {f"rk{i}": dimension.sql() for i, dimension in enumerate(rollup.dimensions)}
    measures = {f"rm{i}": measure.aggregate() for i, measure in enumerate(rollup.measures)}
    return (queryset.annotate(rk_bucket=bucket(rollup.time, rollup.step), **names)
            .values("rk_bucket", *names).annotate(**measures).values_list("rk_bucket", *names, *measures))


def buckets_in(rollup, queryset):
    """The set of the rollup's buckets that a queryset's source rows fall in, computed in SQL."""
    return {
        _from_epoch(seconds) for seconds in queryset.order_by()
        .annotate(rk_bucket=EpochBucket(rollup.time, rollup.step)).values_list("rk_bucket", flat=True).distinct()
    }


def _from_epoch(seconds):
    # Buckets are read back as whole seconds since the epoch, not as times: a time read from PostgreSQL
    # follows the session's time zone, and an integer follows nothing.
    return EPOCH + dt.timedelta(seconds=int(seconds))


def _negated(counts):
    return Counter({key: -n if isinstance(n, int) else tuple(-v for v in n) for key, n in counts.items()})


def subtract(queryset, *, using=None, rollups=None):
    """Subtract the source rows of a queryset (not yet deleted) from every rollup of its model (or from the
    rollups given), aggregated in SQL. Call in the transaction that deletes them (delete() does both)."""
    using = using or queryset.db
    counts = {}
    chosen = of(queryset.model) if rollups is None else rollups
    _check_subtractable(chosen)
    for rollup in chosen:
        if rollup.keep is None:
            counts[rollup] = _negated(counts_in(rollup, queryset))
        else:
            counts[rollup] = Deferred(
                lambda kept, rollup=rollup: _negated(counts_in(rollup, queryset, kept=kept)),
                buckets=lambda rollup=rollup: buckets_in(rollup, queryset),
            )
    apply(counts, using=using)


def _check_subtractable(chosen):
    for rollup in chosen:
        if not rollup.subtractable:
            raise ValueError(_not_subtractable(rollup))


def delete(queryset, *, using=None, rollups=None):
    """Delete a queryset's source rows and subtract them from the rollups, in one transaction; returns how many.

    The rows are locked first (on PostgreSQL), so two deletes of the same rows never both subtract them,
    then handled CHUNK primary keys at a time. An unfiltered queryset empties the table and its rollups."""
    using = using or queryset.db
    model = queryset.model
    base = model._base_manager.using(using)
    if queryset.query.where:
        # Before anything is locked or deleted: an emptied table empties the rollups, any other delete subtracts.
        _check_subtractable(of(model) if rollups is None else rollups)
    with transaction.atomic(using=using, savepoint=False):
        if not queryset.query.where:
            connection = connections[using]
            if connection.vendor == "postgresql":
                # Wait for the inserts under way, then empty the rollups with the table.
                with connection.cursor() as cursor:
                    cursor.execute(f"LOCK TABLE {connection.ops.quote_name(model._meta.db_table)} "
                                   "IN SHARE ROW EXCLUSIVE MODE")
            clear(model, using=using, rollups=rollups)
            deleted, _ = base.all().delete()
            return deleted
        pks = list(queryset.using(using).order_by().select_for_update().values_list("pk", flat=True))
        total = 0
        for first in range(0, len(pks), CHUNK):
            chunk = base.filter(pk__in=pks[first:first + CHUNK])
            subtract(chunk, using=using, rollups=rollups)
            deleted, _ = chunk.delete()
            total += deleted
        return total


def check_droppable(source, start, end, *, rollups=None):
    """Raise ValueError unless [start, end) is whole buckets of every rollup of the source (or of those given)."""
    for rollup in of(source) if rollups is None else rollups:
        if floor_time(start, rollup.step) != start or floor_time(end, rollup.step) != end:
            raise ValueError(
                f"Rollup {rollup.name}: buckets of {rollup.step} do not fit whole in {start.isoformat()} .. "
                f"{end.isoformat()}; its source rows must be deleted (and subtracted), not dropped")


def drop_buckets(source, start, end, *, using=DEFAULT_DB_ALIAS, rollups=None):
    """Delete the rows of every rollup of the source model (or of those given) whose buckets lie in [start, end),
    when all the source rows of that time are gone at once (e.g. a day's partition dropped): whole buckets, no
    aggregation or subtraction. Returns how many rollup rows were deleted.

    Every rollup's buckets must fit whole in the range (a rollup of hours or days for a range of whole days):
    a bucket that straddles an edge (coarser than the range, or not aligned to it) would keep counting rows
    that are gone, so ValueError is raised before anything is deleted; such a table deletes its rows instead.
    Call in the transaction that removes the source rows, or right after they became invisible."""
    chosen = of(source) if rollups is None else rollups
    check_droppable(source, start, end, rollups=chosen)
    deleted = 0
    for rollup in chosen:
        rows = rollup.rollup_model._base_manager.using(using).filter(
            **{f"{rollup.bucket}__gte": start, f"{rollup.bucket}__lt": end})
        deleted += rows.delete()[0]
    return deleted


def clear(source, *, using=DEFAULT_DB_ALIAS, rollups=None):
    """Empty every rollup of a source model, or the rollups given (with the source table, or before a rebuild)."""
    for rollup in of(source) if rollups is None else rollups:
        rollup.rollup_model._base_manager.using(using).all().delete()


def rebuild(source, *, using=DEFAULT_DB_ALIAS, rollups=None):
    """Recompute rollups (default: every one of the source model) from the raw table, in one transaction: in
    SQL (INSERT ... SELECT ... GROUP BY) but for capped sums and rollups with a `keep` rule.

    A rollup with a `keep` rule is recounted for the buckets it keeps among those of the raw rows."""
    model = _model(source)
    chosen = rollups if rollups is not None else of(model)
    raw = model._base_manager.using(using).all()
    with transaction.atomic(using=using):
        for rollup in chosen:
            rollup.rollup_model._base_manager.using(using).all().delete()
        # Rollups kept for every bucket, without a capped sum: one INSERT ... SELECT ... GROUP BY in the database.
        in_sql = [rollup for rollup in chosen if rollup.keep is None and all(m.cap is None for m in rollup.measures)]
        for rollup in in_sql:
            # In key order, bucket first: the rows of a bucket are stored together, as time-ordered writes leave them.
            keys = ["rk_bucket", *(f"rk{i}" for i in range(len(rollup.dimensions)))]
            sql, params = _grouped(rollup, raw, BucketStart).order_by(*keys).query.sql_with_params()
            upsert_select(rollup, sql, params, using=using)
        apply({
            rollup: counts_in(rollup, raw) if rollup.keep is None else Deferred(
                lambda kept, rollup=rollup: counts_in(rollup, raw, kept=kept),
                buckets=lambda rollup=rollup: buckets_in(rollup, raw),
            ) for rollup in chosen if rollup not in in_sql
        }, using=using)


# Reads: the planner -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How to read a window: the rollup's buckets [first, stop), plus or minus the finer rollup's buckets
    `finer` (sign, first, stop), plus or minus the raw rows of `ranges` (sign, low, high), both ends inclusive.
    """

    first: dt.datetime
    stop: dt.datetime
    ranges: tuple = ()
    finer: tuple = ()


def _spans(start, end, step):
    """(first, stop, edges): the whole steps [first, stop) inside the inclusive window, and the raw edges
    (low, high) pairs, both inclusive; None when the window holds no whole step."""
    try:
        first = floor_time(start, step)
        if first < start:
            first += step
        stop = floor_time(end, step)
        if stop + step - _US <= end:
            stop += step
    except OverflowError:
        return None
    if first >= stop:
        return None
    edges = []
    if start < first:
        edges.append((start, first - _US))
    if stop <= end:
        edges.append((stop, end))
    return first, stop, edges


def plan(window, step, *, now=None):
    """The plan of an inclusive window (start, end) over buckets of `step`, or None when it holds no whole
    bucket (then read the raw table alone).

    A partial bucket at an edge is read from the raw table, or as that bucket's rollup row less the rest of
    the bucket when the rest is the shorter time (no row starts after now, so the edge at "now" then costs
    nothing)."""
    spans = _spans(*window, step)
    if spans is None:
        return None
    first, stop, edges = spans
    now = now or timezone.now()
    ranges = []
    for low, high in edges:
        start = floor_time(low, step)
        end = start + step
        rest = (low - start) + max(dt.timedelta(0), min(end, now) - high)
        if high - low <= rest:
            ranges.append((1, low, high))
            continue
        first, stop = min(first, start), max(stop, end)
        if start < low:
            ranges.append((-1, start, low - _US))
        if high + _US < end:
            ranges.append((-1, high + _US, end - _US))
    return Plan(first, stop, tuple(ranges))


def refine(planned, step, covered, *, now=None):
    """A plan whose raw ranges are read, where they can be, from a finer rollup of `step`: each raw range's
    whole finer buckets [first, stop) go to plan.finer when covered(first, stop) (e.g. every hour sealed),
    and only their partial edges stay raw."""
    if planned is None:
        return None
    finer, raw = list(planned.finer), []
    for sign, low, high in planned.ranges:
        inner = plan((low, high), step, now=now)
        if inner is not None and covered(inner.first, inner.stop):
            finer.append((sign, inner.first, inner.stop))
            raw.extend((sign * inner_sign, a, b) for inner_sign, a, b in inner.ranges)
            continue
        raw.append((sign, low, high))
    return Plan(planned.first, planned.stop, tuple(raw), tuple(finer))


def _measure(rollup, name):
    if name is None:
        return rollup.measures[0]
    return next(measure for measure in rollup.measures if measure.name == name)


def total(rollup, plan, *, raw, rows, measure=None, finer=None):
    """A measure's total over a window planned by plan(): rows is the rollup's queryset filtered by the
    dimensions (no window), raw the source queryset filtered alike (no window), finer (Rollup, queryset) the
    finer rollup of plan.finer. One statement."""
    measure = _measure(rollup, measure)
    whole = rows.filter(**{f"{rollup.bucket}__gte": plan.first, f"{rollup.bucket}__lt": plan.stop}).order_by()
    sql, params = whole.values(measure.name).query.sql_with_params()
    parts, all_params = [f"(SELECT COALESCE(SUM(r.{_q(rows, measure.name)}), 0) FROM ({sql}) r)"], list(params)
    for sign, low, high in plan.finer:
        finer_rollup, finer_rows = finer
        part = finer_rows.filter(**{f"{finer_rollup.bucket}__gte": low, f"{finer_rollup.bucket}__lt": high})
        sql, params = part.order_by().values(measure.name).query.sql_with_params()
        parts.append(f"{'+' if sign > 0 else '-'} (SELECT COALESCE(SUM(h.{_q(rows, measure.name)}), 0) FROM ({sql}) h)")
        all_params.extend(params)
    raw = raw.filter(rollup.raw_filter()).order_by()
    for sign, low, high in plan.ranges:
        part = raw.filter(**{f"{rollup.time}__range": (low, high)})
        if measure.when is not None:
            part = part.filter(measure.when)
        if measure.field is None:
            sql, params = part.values("pk").query.sql_with_params()
            parts.append(f"{'+' if sign > 0 else '-'} (SELECT COUNT(*) FROM ({sql}) c)")
        else:
            sql, params = part.annotate(rv=F(measure.field)).values("rv").query.sql_with_params()
            parts.append(f"{'+' if sign > 0 else '-'} (SELECT COALESCE(SUM(c.rv), 0) FROM ({sql}) c)")
        all_params.extend(params)
    with connections[rows.db].cursor() as cursor:
        cursor.execute("SELECT " + " ".join(parts), all_params)
        return int(cursor.fetchone()[0])


def _q(queryset, name):
    return connections[queryset.db].ops.quote_name(name)


def grouped(rollup, plan, by, *, raw, rows, measure=None, finer=None, limit=None, label=None):
    """[(key, total)]: a measure's totals per dimension `by` over a planned window, most first, ties by key;
    keys left at zero or less are dropped. raw, rows and finer as for total(). label (a Func class such as
    an address as text) turns the summed keys into the keys returned: applied to the summed rows, not to
    every raw row."""
    measure = _measure(rollup, measure)
    dimension = next(d for d in rollup.dimensions if d.name == by)
    parts = [(1, rows.filter(**{f"{rollup.bucket}__gte": plan.first, f"{rollup.bucket}__lt": plan.stop})
              .order_by().annotate(rk=F(by)).values("rk").annotate(n=Sum(measure.name)))]
    for sign, low, high in plan.finer:
        finer_rollup, finer_rows = finer
        part = finer_rows.filter(**{f"{finer_rollup.bucket}__gte": low, f"{finer_rollup.bucket}__lt": high})
        parts.append((sign, part.order_by().annotate(rk=F(by)).values("rk").annotate(n=Sum(measure.name))))
    raw = raw.filter(rollup.raw_filter()).order_by()
    for sign, low, high in plan.ranges:
        part = raw.filter(**{f"{rollup.time}__range": (low, high)}).annotate(rk=dimension.sql()).values("rk")
        parts.append((sign, part.annotate(n=measure.aggregate())))
    return union_sum(parts, limit=limit, label=label, using=rows.db)


def window_rows(rollup, plan, keys, measures, *, raw, rows, finer=None, summed=False):
    """(sql, params): a SELECT of a planned window's counts, for a caller's own GROUP BY: one row per rollup row
    of the whole buckets and per key of each raw edge, columns k0, k1, ... (the dimensions `keys`) then m0, m1,
    ... (the `measures`, by name), negated for the parts the plan subtracts. raw, rows and finer as for total()
    (the finer rollup has the same dimensions and measures).

    Summed per key, the rows give the window's totals; a key is in the window when its first measure sums to
    more than zero, so COUNT(DISTINCT) is counted over keys grouped first (never over the rows, since a
    subtracted edge takes a key's rows back out).

    summed: the rollup rows are summed per key (of `keys`) in each part already, so that the caller's GROUP BY
    reads a row per key and part rather than per bucket and key (when the keys are few of the rollup's)."""
    chosen = [_measure(rollup, name) for name in measures]
    dimensions = {d.name: d for d in rollup.dimensions}
    names = [f"k{i}" for i in range(len(keys))] + [f"m{i}" for i in range(len(chosen))]

    def rollup_rows(queryset):
        queryset = queryset.order_by()
        if summed:
            # Grouped by the keys (by a constant when there are none), as a raw edge is.
            groups = {f"k{i}": F(key) for i, key in enumerate(keys)} or {"k_all": Value(0)}
            return (queryset.annotate(**groups).values(*groups)
                    .annotate(**{f"m{i}": Sum(m.name) for i, m in enumerate(chosen)}))
        return (queryset.annotate(**{f"k{i}": F(key) for i, key in enumerate(keys)},
                                  **{f"m{i}": F(m.name) for i, m in enumerate(chosen)}).values(*names))

    parts = [(1, rollup_rows(rows.filter(**{f"{rollup.bucket}__gte": plan.first, f"{rollup.bucket}__lt": plan.stop})))]
    for sign, low, high in plan.finer:
        finer_rollup, finer_rows = finer
        between = {f"{finer_rollup.bucket}__gte": low, f"{finer_rollup.bucket}__lt": high}
        parts.append((sign, rollup_rows(finer_rows.filter(**between))))
    raw = raw.filter(rollup.raw_filter()).order_by()
    for sign, low, high in plan.ranges:
        # Grouped by the keys (by a constant when there are none, for the edge's totals).
        groups = {f"k{i}": dimensions[key].sql() for i, key in enumerate(keys)} or {"k_all": Value(0)}
        part = (raw.filter(**{f"{rollup.time}__range": (low, high)}).annotate(**groups).values(*groups)
                .annotate(**{f"m{i}": m.aggregate() for i, m in enumerate(chosen)}))
        parts.append((sign, part))
    sql, params = [], []
    for sign, part in parts:
        part_sql, part_params = part.query.sql_with_params()
        columns = ", ".join([f"p.k{i}" for i in range(len(keys))]
                            + [f"{'-' if sign < 0 else ''}p.m{i} AS m{i}" for i in range(len(chosen))])
        sql.append(f"SELECT {columns} FROM ({part_sql}) p")
        params.extend(part_params)
    return " UNION ALL ".join(sql), params


def union_sum(parts, *, limit=None, label=None, using=DEFAULT_DB_ALIAS):
    """[(key, n)]: the parts' rows summed per key, most first, ties by key; keys left with nothing are dropped.
    parts are (sign, queryset) pairs, sign 1 or -1, each a values("rk").annotate(n=...) query."""
    connection = connections[using]
    sql, params = [], []
    for sign, part in parts:
        part_sql, part_params = part.query.sql_with_params()
        sql.append(f"SELECT p.rk AS k, {'-' if sign < 0 else ''}p.n AS n FROM ({part_sql}) p")
        params.extend(part_params)
    union = " UNION ALL ".join(sql)
    outer = "u.k"
    if label is not None:
        compiler = parts[0][1].query.get_compiler(connection=connection)
        outer, label_params = compiler.compile(label(RawSQL("u.k", ())))
        params = [*label_params, *params, *label_params]
    limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {outer} AS g, SUM(u.n) AS n FROM ({union}) u GROUP BY {outer} HAVING SUM(u.n) > 0 "
            f"ORDER BY n DESC, g{limit_sql}",
            params,
        )
        return [(k, int(n)) for k, n in cursor.fetchall()]
