"""The rollup core: every write path keeps a rollup equal to the raw rows, and the planner reads what the raw
rows hold, on SQLite and PostgreSQL.

The source and rollup tables are models of this module, created for it alone (in no installed app).
"""

import datetime as dt
import random
from collections import Counter

import pytest
from django.db import connection, models, transaction
from django.db.models import Case, Count, F, IntegerField, Max, Min, Q, Sum, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from vpnmonitor import rollups
from vpnmonitor.rollups import Dimension, Measure, Rollup

UTC = dt.UTC
APP = "rollups_test"


class Reading(models.Model):  # noqa: DJ008 - a table of this test only
    time = models.DateTimeField()
    sensor = models.CharField(max_length=20, null=True, blank=True)
    kind = models.CharField(max_length=8)
    port = models.IntegerField(null=True)
    value = models.BigIntegerField()
    alarm = models.BooleanField(default=False)

    class Meta:
        app_label = APP


class ReadingHourly(models.Model):  # noqa: DJ008 - a table of this test only
    bucket = models.DateTimeField()
    kind = models.CharField(max_length=8)
    readings = models.BigIntegerField()
    total = models.BigIntegerField()
    alarms = models.BigIntegerField()

    class Meta:
        app_label = APP
        constraints = [models.UniqueConstraint(fields=["bucket", "kind"], name="rollups_test_hourly_key")]


class ReadingDaily(models.Model):  # noqa: DJ008 - a table of this test only
    day = models.DateTimeField()
    sensor = models.CharField(max_length=20)
    port = models.IntegerField()
    readings = models.BigIntegerField()

    class Meta:
        app_label = APP
        constraints = [models.UniqueConstraint(fields=["day", "sensor", "port"], name="rollups_test_daily_key")]


class ReadingSixHours(models.Model):  # noqa: DJ008 - a table of this test only
    """Kept only for the buckets in KEPT (as a rollup kept for sealed hours is)."""

    bucket = models.DateTimeField()
    kind = models.CharField(max_length=8)
    readings = models.BigIntegerField()

    class Meta:
        app_label = APP
        constraints = [models.UniqueConstraint(fields=["bucket", "kind"], name="rollups_test_six_key")]


class ReadingPeak(models.Model):  # noqa: DJ008 - a table of this test only
    """Measures that are not plain sums: a sum capped at CAP, the highest value, the first and last time."""

    bucket = models.DateTimeField()
    kind = models.CharField(max_length=8)
    readings = models.BigIntegerField()
    capped = models.BigIntegerField()
    peak = models.BigIntegerField()
    first = models.DateTimeField()
    last = models.DateTimeField()

    class Meta:
        app_label = APP
        constraints = [models.UniqueConstraint(fields=["bucket", "kind"], name="rollups_test_peak_key")]


class ReadingBySensor(models.Model):  # noqa: DJ008 - a table of this test only
    """Dimensions that may be empty: a NULL sensor or port is a key of its own, as is the empty sensor ""."""

    bucket = models.DateTimeField()
    sensor = models.CharField(max_length=20, null=True)
    port = models.IntegerField(null=True)
    readings = models.BigIntegerField()
    total = models.BigIntegerField()

    class Meta:
        app_label = APP
        constraints = [rollups.RollupKey(fields=["bucket", "sensor", "port"], name="rollups_test_sensor_key")]


OTHER_PORT, NO_PORT = -1, -2


def fold_port(row):
    port = row["port"]
    if port is None:
        return NO_PORT
    return OTHER_PORT if port >= 1024 and row["kind"] == "b" else port


def fold_port_sql():
    return Case(When(port__isnull=True, then=Value(NO_PORT)),
                When(kind="b", port__gte=1024, then=Value(OTHER_PORT)),
                default=F("port"), output_field=IntegerField())


KEPT = set()

HOURLY = Rollup(
    name="test.hourly", source=Reading, model=ReadingHourly, time="time", step=rollups.HOUR,
    dimensions=(Dimension("kind"),),
    measures=(Measure("readings"), Measure("total", field="value"),
              Measure("alarms", when=Q(alarm=True), test=lambda row: row["alarm"], uses=("alarm",))),
)
DAILY = Rollup(
    name="test.daily", source=Reading, model=ReadingDaily, time="time", step=rollups.DAY, bucket="day",
    dimensions=(Dimension("sensor", required=True),
                Dimension("port", compute=fold_port, expression=fold_port_sql, uses=("port", "kind"))),
    measures=(Measure("readings"),),
)
SIX_HOURS = Rollup(
    name="test.six", source=Reading, model=ReadingSixHours, time="time", step=dt.timedelta(hours=6),
    dimensions=(Dimension("kind"),), measures=(Measure("readings"),),
    keep=lambda buckets, using: buckets & KEPT,
)
CAP = 50_000
PEAK = Rollup(
    name="test.peak", source=Reading, model=ReadingPeak, time="time", step=rollups.HOUR,
    dimensions=(Dimension("kind"),),
    measures=(Measure("readings"), Measure("capped", field="value", cap=CAP),
              Measure("peak", field="value", combine="max"),
              Measure("first", field="time", combine="min"), Measure("last", field="time", combine="max")),
)
BY_SENSOR = Rollup(
    name="test.by_sensor", source=Reading, model=ReadingBySensor, time="time", step=rollups.HOUR,
    dimensions=(Dimension("sensor"), Dimension("port")), measures=(Measure("readings"), Measure("total", field="value")),
)
ALL = (HOURLY, DAILY, SIX_HOURS)
MODELS = (Reading, ReadingHourly, ReadingDaily, ReadingSixHours, ReadingPeak, ReadingBySensor)
START = dt.datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def tables(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            for model in MODELS:
                editor.create_model(model)
        yield
        with connection.schema_editor() as editor:
            for model in reversed(MODELS):
                editor.delete_model(model)


@pytest.fixture
def db_tables(tables, db):
    KEPT.clear()
    yield
    KEPT.clear()


def readings(count, seed=7):
    pick = random.Random(seed)
    out = []
    for _ in range(count):
        out.append({
            "time": START + dt.timedelta(seconds=pick.randrange(3 * 86400), microseconds=pick.choice([0, 999_999])),
            "sensor": pick.choice(["s1", "s2", "s3", None, ""]),
            "kind": pick.choice(["a", "b"]),
            "port": pick.choice([None, 22, 443, 1024, 5000, 65535]),
            "value": pick.randrange(1, 10_000),
            "alarm": pick.random() < 0.2,
        })
    return out


def store(rows):
    """The service a source app writes through: insert the rows, then add them to the rollups."""
    with transaction.atomic():
        Reading.objects.bulk_create([Reading(**row) for row in rows])
        rollups.add(Reading, rows, rollups=ALL)


def raw_hourly():
    rows = (Reading.objects.annotate(b=rollups.BucketStart("time", rollups.HOUR)).values("b", "kind")
            .annotate(readings=Count("pk"), total=Sum("value"), alarms=Count("pk", filter=Q(alarm=True))))
    return {(r["b"], r["kind"]): (r["readings"], r["total"], r["alarms"]) for r in rows}


def stored_hourly():
    return {(r.bucket, r.kind): (r.readings, r.total, r.alarms) for r in ReadingHourly.objects.all()}


def raw_daily():
    counts = Counter()
    for row in Reading.objects.values("time", "sensor", "port", "kind"):
        if row["sensor"]:
            day = row["time"].astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            counts[day, row["sensor"], fold_port(row)] += 1
    return dict(counts)


def stored_daily():
    return {(r.day, r.sensor, r.port): r.readings for r in ReadingDaily.objects.all()}


def raw_six(kept):
    counts = Counter()
    for row in Reading.objects.values("time", "kind"):
        bucket = rollups.floor_time(row["time"], dt.timedelta(hours=6))
        if bucket in kept:
            counts[bucket, row["kind"]] += 1
    return dict(counts)


def stored_six():
    return {(r.bucket, r.kind): r.readings for r in ReadingSixHours.objects.all()}


def assert_exact(kept=()):
    assert stored_hourly() == raw_hourly()
    assert stored_daily() == raw_daily()
    assert stored_six() == raw_six(set(kept))


def test_rows_added_in_memory_equal_the_rows_counted_in_sql(db_tables):
    store(readings(600))
    assert Reading.objects.count() == 600
    assert sum(readings for readings, _, _ in stored_hourly().values()) == 600
    assert_exact()
    for rollup in (HOURLY, DAILY):
        assert rollups.counts_in(rollup, Reading.objects.all()) == rollups.count_rows(rollup, Reading.objects.all())


def test_a_second_batch_adds_to_the_rows_the_first_made(db_tables):
    rows = readings(400)
    store(rows[:150])
    store(rows[150:])
    assert_exact()


def test_deleting_through_the_core_subtracts_and_drops_rows_that_reach_zero(db_tables):
    store(readings(500))
    first_day = Q(time__lt=START + rollups.DAY)
    deleted = rollups.delete(Reading.objects.filter(first_day | Q(kind="a", alarm=True)), rollups=ALL)
    assert deleted == 500 - Reading.objects.count()
    assert not ReadingHourly.objects.filter(bucket__lt=START + rollups.DAY).exists()
    assert not ReadingDaily.objects.filter(day=START).exists()
    assert ReadingHourly.objects.filter(readings__lte=0).count() == 0
    assert_exact()


def test_deleting_every_row_empties_the_rollups(db_tables):
    store(readings(120))
    assert rollups.delete(Reading.objects.all(), rollups=ALL) == 120
    assert (ReadingHourly.objects.count(), ReadingDaily.objects.count(), ReadingSixHours.objects.count()) == (0, 0, 0)


def test_a_rollup_kept_for_some_buckets_counts_only_those_and_keeps_them_exact(db_tables):
    kept = {START + dt.timedelta(hours=6), START + dt.timedelta(hours=30)}
    KEPT.update(kept)
    store(readings(500))
    assert set(bucket for bucket, _ in stored_six()) == kept
    rollups.delete(Reading.objects.filter(time__lt=START + dt.timedelta(hours=9)), rollups=ALL)
    assert_exact(kept)


def test_rebuild_recounts_every_rollup_from_the_raw_rows(db_tables):
    KEPT.add(START + dt.timedelta(hours=12))
    with transaction.atomic():
        Reading.objects.bulk_create([Reading(**row) for row in readings(300)])  # no rollup kept
    assert ReadingHourly.objects.count() == 0
    rollups.rebuild(Reading, rollups=ALL)
    assert_exact(KEPT)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no session time zone")
def test_buckets_counted_in_sql_are_utc_buckets_whatever_the_sessions_time_zone(db_tables):
    rows = readings(300)
    store(rows)
    expected = rollups.count_rows(HOURLY, rows)
    cutoff = START + dt.timedelta(hours=5)
    kept = rollups.count_rows(HOURLY, [row for row in rows if row["time"] >= cutoff])
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/New_York'")  # -05:00 in March: a local hour is not a UTC hour
    try:
        assert rollups.counts_in(HOURLY, Reading.objects.all()) == expected
        assert rollups.buckets_in(HOURLY, Reading.objects.all()) == {bucket for bucket, _ in expected}
        rollups.rebuild(Reading, rollups=[HOURLY])
        rollups.delete(Reading.objects.filter(time__lt=cutoff), rollups=[HOURLY])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")  # how Django reads times
    assert min(bucket for bucket, _ in stored_hourly()) == cutoff
    assert stored_hourly() == raw_hourly() == dict(kept)


def test_upsert_of_negative_counts_subtracts_each_measure(db_tables):
    hour = START + dt.timedelta(hours=2)
    rollups.upsert(HOURLY, {(hour, "a"): (5, 700, 2)})
    rollups.upsert(HOURLY, {(hour, "a"): (-2, -300, -1)})
    assert stored_hourly() == {(hour, "a"): (3, 400, 1)}
    rollups.upsert(HOURLY, {(hour, "a"): (-3, -400, -1)})
    assert stored_hourly() == {}


def test_growing_counts_are_applied_in_one_pipeline_and_counts_to_subtract_are_refused_there(db_tables):
    rows = readings(700, seed=11)
    for batch in (rows[:300], rows[300:]):
        # The second batch's upserts encoded ahead of the write, as a writer does in another thread.
        counts = {rollup: rollups.count_rows(rollup, batch) for rollup in (HOURLY, DAILY, BY_SENSOR)}
        if batch is not rows[:300]:
            counts = {rollup: rollups.prepare(rollup, value) for rollup, value in counts.items()}
            if connection.vendor == "postgresql":
                assert all(isinstance(value, rollups.Statement) for value in counts.values())
        with transaction.atomic():
            Reading.objects.bulk_create([Reading(**row) for row in batch])
            rollups.apply(counts, growing=True)
    assert stored_hourly() == raw_hourly()
    assert stored_daily() == raw_daily()
    assert stored_by_sensor() == raw_by_sensor()
    hour = START + dt.timedelta(hours=2)
    before = stored_hourly()
    with pytest.raises(ValueError, match="applied as growing"), transaction.atomic():
        rollups.apply({HOURLY: Counter({(hour, "a"): (-1, -10, 0)})}, growing=True)
    assert stored_hourly() == before
    if connection.vendor == "postgresql":
        with pytest.raises(ValueError, match="applied as growing"):
            rollups.prepare(HOURLY, Counter({(hour, "a"): (-1, -10, 0)}))
    with pytest.raises(ValueError, match="kept for some buckets"):
        rollups.prepare(SIX_HOURS, Counter())


@pytest.mark.filterwarnings("ignore:DateTimeField Reading.time received a naive datetime")
def test_model_instances_count_as_the_values_the_database_holds(db_tables):
    rows = [Reading(time=dt.datetime(2026, 3, 1, 10, 59, 59, 999_999), sensor="s1", kind="b", port=5000, value=3),
            Reading(time=START + dt.timedelta(hours=11), sensor="s1", kind="b", port=22, value=4)]
    with transaction.atomic():
        Reading.objects.bulk_create(rows)
        rollups.add(Reading, rows, rollups=(HOURLY, DAILY))
    assert stored_daily() == {(START, "s1", OTHER_PORT): 1, (START, "s1", 22): 1}
    assert stored_hourly() == raw_hourly()


@pytest.mark.parametrize(("start", "end"), [
    (START + dt.timedelta(hours=1, minutes=17), START + dt.timedelta(days=2, hours=5, minutes=3)),
    (START, START + dt.timedelta(days=3) - dt.timedelta(microseconds=1)),
    (START + dt.timedelta(minutes=5), START + dt.timedelta(minutes=50)),
    (START + dt.timedelta(hours=23, minutes=50), START + dt.timedelta(days=1, hours=23, minutes=10)),
])
def test_the_planner_reads_what_the_raw_rows_hold(db_tables, start, end):
    store(readings(800))
    window = Reading.objects.filter(time__range=(start, end))
    now = START + dt.timedelta(days=3)
    plan = HOURLY.plan((start, end), now=now)
    raw = Reading.objects.all()
    for measure, expected in (("readings", window.count()), ("total", window.aggregate(n=Sum("value"))["n"] or 0),
                              ("alarms", window.filter(alarm=True).count())):
        got = HOURLY.total(plan, raw=raw, rows=ReadingHourly.objects.all(), measure=measure) if plan else expected
        assert got == expected
    if plan is not None:
        per_kind = HOURLY.grouped(plan, "kind", raw=raw, rows=ReadingHourly.objects.all(), measure="total")
        expected = sorted(((r["kind"], r["n"]) for r in window.values("kind").annotate(n=Sum("value"))),
                          key=lambda kn: (-kn[1], kn[0]))
        assert per_kind == expected
    days = DAILY.plan((start, end), now=now)
    if days is not None:
        finer = rollups.refine(days, rollups.HOUR, lambda first, stop: True, now=now)
        # The daily rollup's partial days from raw rows, its ports folded in SQL as count_rows folds them.
        per_port = DAILY.grouped(days, "port", raw=raw, rows=ReadingDaily.objects.all())
        expected = Counter(fold_port(row) for row in window.exclude(sensor__isnull=True).exclude(sensor="")
                           .values("port", "kind"))
        assert per_port == sorted(expected.items(), key=lambda kn: (-kn[1], kn[0]))
        assert finer.first == days.first and finer.stop == days.stop


def test_a_window_inside_one_bucket_has_no_plan():
    assert rollups.plan((START + dt.timedelta(minutes=1), START + dt.timedelta(minutes=59)), rollups.HOUR) is None


def test_retention_through_the_core_delete_keeps_the_rollups_exact(db_tables):
    from vpnmonitor import retention

    store(readings(700))
    cutoff = START + dt.timedelta(days=1, hours=7, minutes=30)
    older = Reading.objects.filter(time__lt=cutoff).count()
    deleted = retention.delete_before(Reading, "time", cutoff, batch_size=100,
                                      delete=lambda batch: rollups.delete(batch, rollups=ALL))
    assert deleted == older
    assert not Reading.objects.filter(time__lt=cutoff).exists()
    assert_exact()


def test_dropping_a_days_buckets_with_its_rows_keeps_the_rollups_exact(db_tables):
    """What retention does when a whole day goes at once (a partition dropped): the rows go, and the rollups'
    buckets inside the day are deleted whole, nothing subtracted."""
    KEPT.update({START + n * dt.timedelta(hours=6) for n in range(12)})
    store(readings(700))
    day = (START + rollups.DAY, START + 2 * rollups.DAY)
    in_day = Reading.objects.filter(time__gte=day[0], time__lt=day[1])
    hours, days, sixes = (ReadingHourly.objects.filter(bucket__gte=day[0], bucket__lt=day[1]).count(),
                          ReadingDaily.objects.filter(day=day[0]).count(),
                          ReadingSixHours.objects.filter(bucket__gte=day[0], bucket__lt=day[1]).count())
    assert (hours, days, sixes) == (48, 21, 8)
    with transaction.atomic():
        assert in_day._raw_delete(in_day.db) > 200
        assert rollups.drop_buckets(Reading, *day, rollups=ALL) == hours + days + sixes
    assert ReadingHourly.objects.filter(bucket__lt=day[0]).count() == 48  # the days around it are untouched
    assert_exact(KEPT)


def test_buckets_that_do_not_fit_whole_in_the_range_are_not_dropped(db_tables):
    """A bucket coarser than the range (or across its edge) would keep counting rows that are gone."""
    store(readings(100))
    weekly = Rollup(name="test.weekly", source=Reading, model=ReadingDaily, time="time", step=dt.timedelta(days=7),
                    bucket="day", dimensions=(Dimension("sensor"),))
    with pytest.raises(ValueError, match="test.weekly: buckets of 7 days, 0:00:00 do not fit whole"):
        rollups.drop_buckets(Reading, START, START + rollups.DAY, rollups=(HOURLY, weekly))
    with pytest.raises(ValueError, match="test.six: buckets of 6:00:00 do not fit whole"):
        rollups.drop_buckets(Reading, START + dt.timedelta(hours=3), START + rollups.DAY, rollups=(HOURLY, SIX_HOURS))
    assert stored_hourly() == raw_hourly()  # nothing was deleted: the check comes first


def test_array_literals_quote_text_and_leave_numbers_addresses_and_epoch_microseconds_bare():
    assert rollups._array_literal(['a"b', "c\\d", "", "uplink", None], "text") == '{"a\\"b","c\\\\d","","uplink",NULL}'
    assert rollups._array_literal([None, "", None, "NULL", '"'], "text") == '{NULL,"",NULL,"NULL","\\""}'
    assert rollups._array_literal([6, -1, 443, None], "integer") == "{6,-1,443,NULL}"
    assert rollups._array_literal(["8.8.8.8", "2001:db8::1"], "inet") == "{8.8.8.8,2001:db8::1}"
    day = dt.datetime(2026, 11, 23, tzinfo=UTC)
    assert rollups._array_literal([day, day + dt.timedelta(microseconds=7)], "timestamp with time zone") == (
        "{1795392000000000,1795392000000007}")
    # A naive time is a time in the default time zone, as Django stores it.
    assert rollups._array_literal([timezone.make_naive(day)], "timestamp with time zone") == "{1795392000000000}"


def raw_peak():
    rows = (Reading.objects.annotate(b=rollups.BucketStart("time", rollups.HOUR)).values("b", "kind")
            .annotate(readings=Count("pk"), total=Sum("value"), peak=Max("value"), first=Min("time"),
                      last=Max("time")))
    return {(r["b"], r["kind"]): (r["readings"], min(r["total"], CAP), r["peak"], r["first"], r["last"])
            for r in rows}


def stored_peak():
    return {(r.bucket, r.kind): (r.readings, r.capped, r.peak, r.first, r.last) for r in ReadingPeak.objects.all()}


def test_max_min_and_capped_sums_combine_across_batches_as_the_raw_rows_aggregate(db_tables):
    rows = readings(900)
    for batch in (rows[:300], rows[300:]):
        with transaction.atomic():
            Reading.objects.bulk_create([Reading(**row) for row in batch])
            rollups.add(Reading, batch, rollups=[PEAK])
    stored = stored_peak()
    assert stored == raw_peak()
    assert any(capped == CAP for _, capped, _, _, _ in stored.values())  # some hours sum past the cap
    assert any(capped < CAP for _, capped, _, _, _ in stored.values())
    assert rollups.counts_in(PEAK, Reading.objects.all()) == rollups.count_rows(PEAK, Reading.objects.all())
    rollups.rebuild(Reading, rollups=[PEAK])
    assert stored_peak() == stored


def test_counts_of_parts_merged_equal_the_counts_of_the_whole():
    rows = readings(900, seed=5)
    parts = (rows[:200], rows[200:650], rows[650:])
    for rollup in (HOURLY, DAILY, PEAK, BY_SENSOR):
        whole = rollups.count_rows(rollup, rows)
        merged = {}
        for part in parts:
            rollups.merge(rollup, merged, rollups.count_rows(rollup, part))
        assert merged == whole
    # PEAK's capped sum saturates, its maxima and minima keep the greater and the lesser.
    early, late = START, START + dt.timedelta(minutes=5)
    assert rollups.merge(PEAK, {("h", "a"): (2, CAP - 1, 7, late, late)}, {("h", "a"): (1, 5, 3, early, early)}) == {
        ("h", "a"): (3, CAP, 7, early, late)}
    # A rollup of one measure holds bare values.
    assert rollups.merge(DAILY, {("d", "s1", 1): 3}, {("d", "s1", 1): 4, ("d", "s2", 1): 1}) == {
        ("d", "s1", 1): 7, ("d", "s2", 1): 1}


def test_upsert_from_a_select_combines_each_measure_as_declared(db_tables):
    rows = readings(700, seed=3)
    with transaction.atomic():
        Reading.objects.bulk_create([Reading(**row) for row in rows])
    for half in (Q(value__lt=5000), Q(value__gte=5000)):
        select = (Reading.objects.filter(half).annotate(b=rollups.BucketStart("time", rollups.HOUR))
                  .values("b", "kind").annotate(readings=Count("pk"), capped=Least(Sum("value"), Value(CAP)),
                                                peak=Max("value"), first=Min("time"), last=Max("time"))
                  .values_list("b", "kind", "readings", "capped", "peak", "first", "last").order_by("b", "kind"))
        sql, params = select.query.sql_with_params()
        with transaction.atomic():
            assert rollups.upsert_select(PEAK, sql, params) == select.count()
    assert stored_peak() == raw_peak()


def test_a_rollup_with_measures_that_are_not_sums_refuses_to_be_subtracted(db_tables):
    rows = readings(200)
    with transaction.atomic():
        Reading.objects.bulk_create([Reading(**row) for row in rows])
        rollups.add(Reading, rows, rollups=[PEAK, HOURLY])
    before = stored_peak()
    for subtract in (rollups.subtract, rollups.delete):
        with pytest.raises(ValueError, match="test.peak cannot be subtracted from: its measures capped"):
            subtract(Reading.objects.filter(kind="a"), rollups=[PEAK, HOURLY])
    hour, kind = next(iter(before))
    with pytest.raises(ValueError, match="cannot be subtracted"):
        rollups.upsert(PEAK, {(hour, kind): (-1, -5, 0, hour, hour)})
    assert Reading.objects.count() == 200
    assert stored_peak() == before == raw_peak()
    assert stored_hourly() == raw_hourly()


def test_a_measure_combines_only_as_sum_max_or_min():
    with pytest.raises(ValueError, match="combine must be one of sum, max, min"):
        Measure("peak", field="value", combine="avg")
    with pytest.raises(ValueError, match="needs a field and takes no cap or condition"):
        Measure("peak", combine="max")
    with pytest.raises(ValueError, match="needs a field and takes no cap or condition"):
        Measure("peak", field="value", combine="max", when=Q(alarm=True), test=lambda row: row["alarm"])
    assert HOURLY.subtractable and not PEAK.subtractable


def raw_by_sensor():
    rows = (Reading.objects.annotate(b=rollups.BucketStart("time", rollups.HOUR)).values("b", "sensor", "port")
            .annotate(readings=Count("pk"), total=Sum("value")))
    return {(r["b"], r["sensor"], r["port"]): (r["readings"], r["total"]) for r in rows}


def stored_by_sensor():
    return {(r.bucket, r.sensor, r.port): (r.readings, r.total) for r in ReadingBySensor.objects.all()}


def test_empty_dimensions_are_keys_of_their_own_through_every_write(db_tables):
    rows = readings(900, seed=5)
    for batch in (rows[:400], rows[400:]):
        with transaction.atomic():
            Reading.objects.bulk_create([Reading(**row) for row in batch])
            rollups.add(Reading, batch, rollups=[BY_SENSOR])
    stored = stored_by_sensor()
    assert stored == raw_by_sensor()
    # One row per bucket for the NULL sensor, another for the empty one: 72 hours x 5 sensors x 6 ports at most.
    assert ReadingBySensor.objects.filter(sensor=None).count() == len({(b, p) for b, s, p in stored if s is None})
    assert ReadingBySensor.objects.filter(sensor="").exists() and ReadingBySensor.objects.filter(port=None).exists()
    assert rollups.counts_in(BY_SENSOR, Reading.objects.all()) == rollups.count_rows(BY_SENSOR, rows)
    rollups.delete(Reading.objects.filter(Q(sensor=None) | Q(port=None, kind="a")), rollups=[BY_SENSOR])
    assert not ReadingBySensor.objects.filter(sensor=None).exists()
    assert stored_by_sensor() == raw_by_sensor()
    rollups.rebuild(Reading, rollups=[BY_SENSOR])
    assert stored_by_sensor() == raw_by_sensor()


@pytest.mark.parametrize(("start", "end"), [
    (START + dt.timedelta(hours=1, minutes=17), START + dt.timedelta(days=2, hours=5, minutes=3)),
    (START + dt.timedelta(minutes=10), START + dt.timedelta(hours=2, minutes=50)),
])
@pytest.mark.parametrize("summed", [False, True])
def test_window_rows_group_and_count_distinct_keys_as_the_raw_rows_do(db_tables, start, end, summed):
    rows = readings(900, seed=9)
    with transaction.atomic():
        Reading.objects.bulk_create([Reading(**row) for row in rows])
        rollups.add(Reading, rows, rollups=[BY_SENSOR])
    window = Reading.objects.filter(time__range=(start, end))
    # The rest of the last hour is shorter than its part in the window: the plan subtracts it.
    plan = BY_SENSOR.plan((start, end), now=START + dt.timedelta(days=3))
    assert any(sign < 0 for sign, _, _ in plan.ranges)
    sql, params = rollups.window_rows(BY_SENSOR, plan, ["sensor", "port"], ["readings", "total"],
                                      raw=Reading.objects.all(), rows=ReadingBySensor.objects.all(), summed=summed)
    # With no keys, the window's totals (summed: each part's rows summed to one).
    totals_sql, totals_params = rollups.window_rows(BY_SENSOR, plan, [], ["readings", "total"],
                                                    raw=Reading.objects.all(), rows=ReadingBySensor.objects.all(),
                                                    summed=summed)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT w.k0, SUM(w.m0), SUM(w.m1) FROM ({sql}) w GROUP BY w.k0 HAVING SUM(w.m0) > 0", params)
        per_sensor = {sensor: (int(n), int(total)) for sensor, n, total in cursor.fetchall()}
        cursor.execute(f"SELECT COUNT(*) FROM (SELECT w.k0, w.k1 FROM ({sql}) w GROUP BY w.k0, w.k1 "
                       "HAVING SUM(w.m0) > 0) d", params)
        pairs = cursor.fetchone()[0]
        cursor.execute(f"SELECT COUNT(*), SUM(w.m0), SUM(w.m1) FROM ({totals_sql}) w", totals_params)
        parts, n, total = cursor.fetchone()
    expected = {r["sensor"]: (r["n"], r["total"]) for r in window.values("sensor").annotate(n=Count("pk"),
                                                                                           total=Sum("value"))}
    assert per_sensor == expected and None in per_sensor and "" in per_sensor
    assert pairs == len(set(window.values_list("sensor", "port")))
    assert (int(n), int(total)) == (window.count(), window.aggregate(total=Sum("value"))["total"])
    if summed:
        # A row per part of the plan: its whole buckets, and each raw range.
        assert parts == 1 + len(plan.ranges)
