"""The usage rollups: each client's samples, bytes received and bytes sent per hour, per 6 hours and per day.

All three are counted from the raw samples (UsageSample) when they are stored (services.record_poll, the demo
data), in the same transaction, by vpnmonitor.rollups. Buckets are epoch-aligned, as everywhere else.

The samples are pruned by retention long before the rollups (7 days against 90 days to 5 years), so pruning
deletes the samples only and never subtracts them from the rollups: the rollups are the history.
"""

import datetime as dt

from vpnmonitor import rollups
from vpnmonitor.rollups import Dimension, Measure, Rollup

# The key after the bucket: the client, and its server (a client belongs to one server, so this is the same
# key as the client alone; the server is a column of every rollup row).
DIMENSIONS = (Dimension("client", field="client_id"), Dimension("server", field="server_id"))
MEASURES = (Measure("samples"), Measure("bytes_received", field="bytes_received"),
            Measure("bytes_sent", field="bytes_sent"))


def _declare(table, model, step):
    return rollups.register(Rollup(
        name=f"monitoring.{table}", source="monitoring.UsageSample", model=model, time="timestamp", step=step,
        dimensions=DIMENSIONS, measures=MEASURES,
    ))


HOURLY = _declare("stats_hourly", "monitoring.StatsHourly", rollups.HOUR)
SIX_HOURLY = _declare("stats_6h", "monitoring.Stats6h", dt.timedelta(hours=6))
DAILY = _declare("stats_daily", "monitoring.StatsDaily", rollups.DAY)

# By table name (the watermark's key in RollupState).
BY_TABLE = {"stats_hourly": HOURLY, "stats_6h": SIX_HOURLY, "stats_daily": DAILY}
