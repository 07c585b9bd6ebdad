"""The flow rollups: hourly counts and daily endpoints, kept exact at write time.

They are declared here and registered with vpnmonitor.rollups, which buckets, upserts, subtracts and plans
reads; flowreports.services is the only writer of flows and keeps them through it. This module adds what is
particular to flows: the port folding rule, and the seal of hours for the hourly destination rollup.

Every insert adds its flows to FlowReportHourly (hour, protocol, direction, action) and, per
endpoint, to FlowReportDestinationDaily and FlowReportSourceDaily (day, address, port, protocol,
direction, action), in the same transaction as the flows themselves; every delete subtracts what
it deletes first. Reads answer total_count and /stats from them whenever the filters are only a
window, protocol, direction, action and (for the daily rollups) one source or destination, and
count the partial hours (or days) at the window's edges from the raw table.

The daily rollups keep every port except one kind: the subscriber's own port of a connection it
opened (the destination port of a downlink flow, the source port of an uplink flow) from 1024 up
is ephemeral, one per connection, and keeping each would add a row per flow. Those are counted
together under OTHER_PORT (see ports.py); an IP:port filter for such a port falls back to counting raw flows
when the window has any of them (see selectors.endpoint_count). Flows without a port count under
NO_PORT.

One more rollup, FlowReportDestinationHourly, holds the destinations per hour, so that a window's partial
first day (the default window starts at now - 7 d) is not up to 12 hours of raw flows. Keeping it on every
insert would cost the collector as much again as the daily destinations, so it is filled off the write path:
seal_hours (a beat task) counts each hour once it has ended SEAL_DELAY ago and records the hour in
FlowReportSealedHour. From then on every write that touches a sealed hour adds to it or subtracts from it in
the same transaction, as for the other rollups (a late flow, a delete, retention). Reads use the hourly rows
only for sealed hours. On PostgreSQL the seal and the writes are ordered by a lock per hour (advisory, held to
the end of the transaction): a writer takes its hours' locks shared before it reads which of them are sealed,
and the seal of an hour takes that hour's lock alone, so it waits for the writers of that hour under way (and
then sees their flows) and their writers after it see its seal. Writers of other hours, such as the collector
with the current hour's flows, never wait for a seal. A write of many hours at once takes one lock that stands
for every hour, which a seal then takes too; it only tries for that one, never waiting for a lock while it
holds another, so no writer and seal can wait for each other.
"""

import datetime as dt
import logging
import time
from typing import NamedTuple

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from flowreports.models import FlowReport, FlowReportDestinationHourly, FlowReportSealedHour
from flowreports.ports import folded, folded_expression
from vpnmonitor import rollups as core
from vpnmonitor.rollups import Dimension, Measure, Rollup
from vpnmonitor.timeseries import floor_time

logger = logging.getLogger(__name__)

EPOCH = core.EPOCH
HOUR = core.HOUR
DAY = core.DAY
CHUNK = core.CHUNK
HOURLY_DESTINATION_KEY = ("hour", "destination_ip", "destination_port", "protocol", "direction", "action")
# An hour is sealed once it ended this long ago: an exporter reports a long flow when it ends (or at its
# active timeout), so flows of a closed hour keep arriving for a while, and each after the seal costs its write.
SEAL_DELAY = HOUR
# Hours sealed per run at most (one short transaction each), so that a long history is sealed over several runs.
SEAL_LIMIT = 24 * 31
# How often a seal tries again while a write of many hours holds the lock for every hour, and how long it waits.
SEAL_ATTEMPTS = 20
SEAL_RETRY_SECONDS = 0.25
FLOW = "flowreports.FlowReport"
DIMENSIONS = (Dimension("protocol"), Dimension("direction"), Dimension("action"))


class Endpoint(NamedTuple):
    """One end of a flow and its daily rollup."""

    side: str  # "source" or "destination"
    model_name: str
    # The direction in which this end is the subscriber's, so its ports from 1024 up are ephemeral.
    subscriber_direction: str

    @property
    def ip(self):
        return f"{self.side}_ip"

    @property
    def port(self):
        return f"{self.side}_port"

    @property
    def key(self):
        return ("day", self.ip, self.port, "protocol", "direction", "action")

    @property
    def model(self):
        return apps.get_model("flowreports", self.model_name)

    @property
    def rollup(self):
        return core.get(f"flowreports.{self.side}_daily")

    def port_key(self, direction, port):
        """The port under which a flow counts in this rollup."""
        return folded(port, direction == self.subscriber_direction)

    def port_key_expression(self):
        """port_key() in SQL, for grouping stored flows."""
        return folded_expression(self.port, direction=self.subscriber_direction)

    def dimensions(self):
        """The rollup's key after the bucket: the address (flows without one are not counted), the folded port,
        protocol, direction and action."""
        return (
            Dimension(self.ip, required=True),
            Dimension(self.port, compute=lambda row: self.port_key(row["direction"], row[self.port]),
                      expression=self.port_key_expression, uses=(self.port, "direction")),
            *DIMENSIONS,
        )


DESTINATION = Endpoint("destination", "FlowReportDestinationDaily", "downlink")
SOURCE = Endpoint("source", "FlowReportSourceDaily", "uplink")
ENDPOINTS = (DESTINATION, SOURCE)


def _utc(moment):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def floor_hour(moment):
    return floor_time(_utc(moment), HOUR)


def floor_day(moment):
    return floor_time(_utc(moment), DAY)


# PostgreSQL advisory lock keys (two int4): this namespace, and an hour as whole hours since the epoch, or
# EVERY_HOUR for a write of more than LOCKED_HOURS hours (a lock each would fill the server's lock table).
_LOCK_NAMESPACE = 0x666C6F77
EVERY_HOUR = -(2**31)  # the lowest integer, no hour of a flow
LOCKED_HOURS = 32


def _hour_keys(hours):
    return sorted({(hour - EPOCH) // HOUR for hour in hours}) if len(hours) <= LOCKED_HOURS else [EVERY_HOUR]


def _lock_hours(connection, keys, *, shared):
    """Take the advisory locks of these hour keys (see above) until the end of the transaction."""
    if connection.vendor != "postgresql" or not keys:
        return  # SQLite writes one transaction at a time
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, key) FROM unnest(%s::integer[]) AS key", [_LOCK_NAMESPACE, keys])


def sealed_among(hours, *, using=DEFAULT_DB_ALIAS):
    """The sealed hours among `hours`, read in a transaction that writes flows of those hours (the `keep` rule
    of the hourly destination rollup, which the core calls before it upserts any rollup row).

    The hours' locks are taken shared first, and held until the transaction ends: a seal of one of them under
    way is waited for (its flows then count in it, or this write adds to it), and one not begun yet waits for
    this transaction, so that it counts what this one writes.
    """
    if not hours:
        return set()
    _lock_hours(connections[using], _hour_keys(hours), shared=True)
    found = FlowReportSealedHour.objects.using(using).filter(hour__in=sorted(hours)).values_list("hour", flat=True)
    return {_utc(hour) for hour in found}


HOURLY = core.register(Rollup(
    name="flowreports.hourly", source=FLOW, model="flowreports.FlowReportHourly", time="start_time", step=HOUR,
    bucket="hour", dimensions=DIMENSIONS, measures=(Measure("flows"),),
))
DESTINATION_DAILY = core.register(Rollup(
    name="flowreports.destination_daily", source=FLOW, model="flowreports.FlowReportDestinationDaily",
    time="start_time", step=DAY, bucket="day", dimensions=DESTINATION.dimensions(), measures=(Measure("flows"),),
))
SOURCE_DAILY = core.register(Rollup(
    name="flowreports.source_daily", source=FLOW, model="flowreports.FlowReportSourceDaily",
    time="start_time", step=DAY, bucket="day", dimensions=SOURCE.dimensions(), measures=(Measure("flows"),),
))
def _sealed_hours(hours, *, using=DEFAULT_DB_ALIAS):
    """The keep rule of the hourly destination rollup: sealed_among, looked up when a write asks."""
    return sealed_among(hours, using=using)


DESTINATION_HOURLY = core.register(Rollup(
    name="flowreports.destination_hourly", source=FLOW, model="flowreports.FlowReportDestinationHourly",
    time="start_time", step=HOUR, bucket="hour", dimensions=DESTINATION.dimensions(), measures=(Measure("flows"),),
    keep=_sealed_hours,
))


def hold_off_seals(*, using=DEFAULT_DB_ALIAS):
    """Keep every seal waiting until the transaction ends (before a write of every hour, such as emptying)."""
    _lock_hours(connections[using], [EVERY_HOUR], shared=True)


def clear(*, using=DEFAULT_DB_ALIAS):
    """Empty the rollups (the seals stay: a sealed hour with no flows has no rows)."""
    hold_off_seals(using=using)
    core.clear(FLOW, using=using)


def rebuild(*, using=DEFAULT_DB_ALIAS):
    """Recompute every rollup from the raw table (after a restore, or to check them), in one transaction."""
    with transaction.atomic(using=using):
        hold_off_seals(using=using)
        core.rebuild(FLOW, using=using)


def seal_hours(*, now=None, limit=SEAL_LIMIT, using=DEFAULT_DB_ALIAS):
    """Seal the hours from the oldest flow's to the last that ended SEAL_DELAY ago that have no seal yet,
    newest first, at most `limit` of them: each is counted into FlowReportDestinationHourly and recorded
    in FlowReportSealedHour in a transaction of its own. Seals of hours before the oldest flow, which have
    nothing left to count, are removed. Returns how many hours were sealed."""
    last = floor_hour((now or timezone.now()) - SEAL_DELAY) - HOUR
    oldest = (FlowReport._base_manager.using(using).order_by("start_time")
              .values_list("start_time", flat=True).first())
    if oldest is None:
        return 0
    first = floor_hour(oldest)
    with transaction.atomic(using=using):
        # Only the seals (no writer locks them, so this never waits while it holds the lock): the rows of an
        # hour without a seal are never read, and a seal clears them before it counts the hour.
        if _try_lock_every_hour(connections[using]):  # else a write of many hours is under way: next run
            FlowReportSealedHour.objects.using(using).filter(hour__lt=first).delete()
    sealed = {_utc(hour) for hour in FlowReportSealedHour.objects.using(using)
              .filter(hour__gte=first, hour__lte=last).values_list("hour", flat=True)}
    done, hour = 0, last
    while hour >= first and done < limit:
        if hour not in sealed:
            counted = _seal(hour, using=using)
            if counted is None:
                logger.info("flowreports: a write of many hours held off sealing %s; the next run goes on", hour)
                break
            done += counted
        hour -= HOUR
    return done


class _Busy(Exception):
    """A write of many hours holds the lock for every hour."""


def _try_lock_every_hour(connection):
    """Take the lock of every hour (exclusive) if no write holds it; whether it was taken."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, EVERY_HOUR])
        return cursor.fetchone()[0]


def _lock_hour_to_seal(connection, hour):
    """Wait for this hour's lock, then try for the one of every hour; False (the transaction must end) if busy."""
    _lock_hours(connection, [(hour - EPOCH) // HOUR], shared=False)
    return _try_lock_every_hour(connection)


def _seal(hour, *, using):
    """1 when this call sealed the hour, 0 when it was sealed already, None when a write of many hours kept
    holding the lock of every hour."""
    connection = connections[using]
    for _ in range(SEAL_ATTEMPTS):
        try:
            with transaction.atomic(using=using):
                # Waits for the writers of this hour under way; its writers after it wait, then find the seal.
                if not _lock_hour_to_seal(connection, hour):
                    raise _Busy
                if FlowReportSealedHour.objects.using(using).filter(hour=hour).exists():
                    return 0  # sealed by another run meanwhile
                # Rows of an hour without a seal were kept by nobody: count the hour afresh.
                FlowReportDestinationHourly.objects.using(using).filter(hour=hour).delete()
                flows = FlowReport._base_manager.using(using).filter(start_time__gte=hour, start_time__lt=hour + HOUR)
                core.upsert(DESTINATION_HOURLY, core.counts_in(DESTINATION_HOURLY, flows, kept={hour}), using=using)
                FlowReportSealedHour.objects.using(using).create(hour=hour)
            return 1
        except _Busy:
            time.sleep(SEAL_RETRY_SECONDS)
    return None
