"""proxytraffic's rollups: the all-tenant summaries of the bucket rows, declared for vpnmonitor.rollups.

Each sums a bucket row's counters (saturating at the bigint maximum, as the bucket rows do), keeps the
highest concurrency and widens first/last seen: they only grow, and retention prunes them by their own
time column under the bucket rows' policy (see apps.py).
"""

import datetime as dt

from vpnmonitor import rollups
from vpnmonitor.rollups import Dimension, Measure, Rollup

BIGINT_MAX = 2**63 - 1
QUARTER = dt.timedelta(minutes=15)

# What every traffic table holds per row, in the column order of TrafficSums.
MEASURES = (
    *(Measure(name, field=name, cap=BIGINT_MAX)
      for name in ("count", "bytes_sent", "bytes_received", "error_count", "duration_ms")),
    Measure("max_concurrency", field="max_concurrency", combine="max"),
    Measure("first_seen", field="first_seen", combine="min"),
    Measure("last_seen", field="last_seen", combine="max"),
)

# Registered in the order the ingest writes them: the few hot total rows last, so that they stay locked
# for as short a time as possible.
DOMAIN_DAY = rollups.register(Rollup(
    name="proxytraffic.domain_day", source="proxytraffic.TrafficBucket", model="proxytraffic.TrafficDomainDay",
    time="bucket", step=rollups.DAY, bucket="day", dimensions=(Dimension("domain"),), measures=MEASURES,
))
ERROR_DAY = rollups.register(Rollup(
    name="proxytraffic.error_day", source="proxytraffic.TrafficBucket", model="proxytraffic.TrafficErrorDay",
    time="bucket", step=rollups.DAY, bucket="day",
    dimensions=(Dimension("error", required=True), Dimension("domain")), measures=MEASURES,
))
TOTAL = rollups.register(Rollup(
    name="proxytraffic.total", source="proxytraffic.TrafficBucket", model="proxytraffic.TrafficTotal",
    time="bucket", step=QUARTER, bucket="bucket", dimensions=(), measures=MEASURES,
))
