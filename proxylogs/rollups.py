"""The hourly rollup of the access log: ProxyLogHour, kept exact at write time by vpnmonitor.rollups.

Per epoch-aligned hour: how many entries, how many were blocked, how many of those went to a raw IP address,
and their bytes. proxylogs.services is the only writer of entries and keeps it in the same transaction as the
entries themselves: store_rows counts each batch it stores (count_batch, in Python, from the rows it sends)
and adds the counts; delete_entries (retention, the admin) subtracts what it deletes; clear_logs empties it
with the table. Reads rely on it being exact: the unfiltered count of ProxyLogQuerySet, /api/logs/stats,
the timeline and the deep pages of /api/logs (selectors.log_page).
"""

from django.db.models import Q

from vpnmonitor import rollups
from vpnmonitor.rollups import Measure, Rollup

HOURLY = rollups.register(Rollup(
    name="proxylogs.hourly", source="proxylogs.ProxyLogEntry", model="proxylogs.ProxyLogHour", time="timestamp",
    step=rollups.HOUR, bucket="hour", dimensions=(),
    measures=(
        Measure("total"),
        Measure("blocked", when=Q(blocked=True), test=lambda row: row["blocked"], uses=("blocked",)),
        Measure("ip_blocked", when=Q(blocked=True, destination_is_ip=True),
                test=lambda row: row["blocked"] and row["destination_is_ip"], uses=("blocked", "destination_is_ip")),
        Measure("bytes", field="bytes"),
    ),
))


def count_batch(rows, columns):
    """HOURLY's counts of rows about to be stored: tuples of the source's fields in `columns` order, with aware
    timestamps. The same counts as vpnmonitor.rollups.count_rows, at a fraction of its cost per row: an
    import's rows come in time order, so most rows fall in the hour of the row before them."""
    time, blocked, is_ip, size = (columns.index(name) for name in ("timestamp", "blocked", "destination_is_ip",
                                                                   "bytes"))
    hours = {}
    start = end = None
    for row in rows:
        moment = row[time]
        if start is None or not start <= moment < end:
            start = HOURLY.bucket_of(moment)
            end = start + rollups.HOUR
            values = hours.get(start)
            if values is None:
                values = hours[start] = [0, 0, 0, 0]
        values[0] += 1
        if row[blocked]:
            values[1] += 1
            if row[is_ip]:
                values[2] += 1
        values[3] += row[size]
    return {(hour,): tuple(values) for hour, values in hours.items()}

