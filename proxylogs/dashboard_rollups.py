"""The rollups the proxy dashboards and summaries read, kept exact at write time through vpnmonitor.rollups.

Four hourly rollups of ProxyLogEntry, each requests, refused requests and bytes (the agents' requests only),
and the whole days of the first two (CLIENTS_DAILY, DESTINATIONS_DAILY, for long windows):

- CLIENTS (ProxyLogClientHour): per client (address or host name, and its masked network);
- DESTINATIONS (ProxyLogDestinationHour): per destination, with its host, registrable domain, whether it is a
  raw address, and the WAF category of the request;
- REQUESTS (ProxyLogRequestHour): per method, HTTP status, result code and file type;
- AGENTS (ProxyLogAgentHour): per User-Agent (its first AGENT_LENGTH characters, a btree key's room) and
  category.

Distinct counts over a window (clients, hosts, domains, and the clients and users of each host) come from two
last-seen tables instead: rollups of one bucket for all time whose measure is the latest request's time, per
client (CLIENTS_SEEN), per host and domain (HOSTS_SEEN) and per host, client, user and domain
(HOST_CLIENTS_SEEN). Every window the selectors
read is "the last N hours", open towards the future, so a key has entries in it exactly when it was last seen
at or after the window's start: a count of the keys seen since then, with no edges to read from the raw table.
An hourly (host, client) rollup would hold almost as many rows as the log itself (a client's requests to one
host rarely repeat within an hour), and each window would then count distinct keys over all its rows.

services.store_rows feeds them every batch it stores (count_batch, one pass over the rows, then the core's
apply), in the batch's transaction. A latest time cannot be taken back, so services.delete_entries subtracts
the summed rollups (the core's delete) and then drops the last-seen rows of keys whose latest request is older
than every entry left (forget_unseen). Entries are deleted oldest first (retention, or everything at once),
so that leaves the last-seen tables exact once a delete is done; while a retention run is under way, a
window that reaches back before its cutoff may still count a key whose entries it has deleted.
"""

import datetime as dt
from collections import Counter
from operator import itemgetter

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Min, Q
from django.db.models.functions import Substr

from vpnmonitor import rollups as core
from vpnmonitor.rollups import Dimension, Measure, Rollup

ENTRY = "proxylogs.ProxyLogEntry"
HOUR = core.HOUR
# The one bucket of the last-seen tables: epoch-aligned steps of 100,000 days put every time from 1970 to 2243 in
# the bucket that starts at the epoch.
ALL_TIME = dt.timedelta(days=100_000)
SEEN_BUCKET = core.EPOCH
AGENT_LENGTH = 1000

_SUMS = (
    Measure("requests"),
    Measure("blocked", when=Q(blocked=True), test=lambda row: row["blocked"], uses=("blocked",)),
    Measure("bytes", field="bytes"),
)
_CLIENT = (Dimension("client_ip"), Dimension("client_host"), Dimension("client_network"))
_LAST_SEEN = (Measure("last_seen", field="timestamp", combine="max"),)


def _agent(row):
    agent = row["user_agent"]
    return agent[:AGENT_LENGTH] if agent else agent


CLIENTS = core.register(Rollup(
    name="proxylogs.clients", source=ENTRY, model="proxylogs.ProxyLogClientHour", time="timestamp", step=HOUR,
    bucket="hour", dimensions=_CLIENT, measures=_SUMS,
))
DESTINATIONS = core.register(Rollup(
    name="proxylogs.destinations", source=ENTRY, model="proxylogs.ProxyLogDestinationHour", time="timestamp",
    step=HOUR, bucket="hour", measures=_SUMS,
    dimensions=(Dimension("destination"), Dimension("destination_host"), Dimension("domain"),
                Dimension("destination_is_ip"), Dimension("waf_category")),
))
# The whole days of the two, for long windows: a window reads its whole days from these, the partial days at its
# edges from the hourly rollups, and only a partial hour from the entries.
CLIENTS_DAILY = core.register(Rollup(
    name="proxylogs.clients_daily", source=ENTRY, model="proxylogs.ProxyLogClientDay", time="timestamp",
    step=core.DAY, bucket="day", dimensions=CLIENTS.dimensions, measures=_SUMS,
))
DESTINATIONS_DAILY = core.register(Rollup(
    name="proxylogs.destinations_daily", source=ENTRY, model="proxylogs.ProxyLogDestinationDay", time="timestamp",
    step=core.DAY, bucket="day", dimensions=DESTINATIONS.dimensions, measures=_SUMS,
))
DAILY = {CLIENTS: CLIENTS_DAILY, DESTINATIONS: DESTINATIONS_DAILY}
REQUESTS = core.register(Rollup(
    name="proxylogs.requests", source=ENTRY, model="proxylogs.ProxyLogRequestHour", time="timestamp", step=HOUR,
    bucket="hour", measures=_SUMS,
    dimensions=(Dimension("method"), Dimension("http_status"), Dimension("result_code"),
                Dimension("file_extension")),
))
AGENTS = core.register(Rollup(
    name="proxylogs.agents", source=ENTRY, model="proxylogs.ProxyLogAgentHour", time="timestamp", step=HOUR,
    bucket="hour", measures=(Measure("requests"),),
    dimensions=(Dimension("user_agent", compute=_agent, expression=lambda: Substr("user_agent", 1, AGENT_LENGTH),
                          uses=("user_agent",)),
                Dimension("user_agent_category")),
))
CLIENTS_SEEN = core.register(Rollup(
    name="proxylogs.clients_seen", source=ENTRY, model="proxylogs.ProxyLogClientSeen", time="timestamp",
    step=ALL_TIME, dimensions=_CLIENT, measures=_LAST_SEEN,
))
HOSTS_SEEN = core.register(Rollup(
    name="proxylogs.hosts_seen", source=ENTRY, model="proxylogs.ProxyLogHostSeen", time="timestamp",
    step=ALL_TIME, measures=_LAST_SEEN, dimensions=(Dimension("destination_host"), Dimension("domain")),
))
HOST_CLIENTS_SEEN = core.register(Rollup(
    name="proxylogs.host_clients_seen", source=ENTRY, model="proxylogs.ProxyLogHostClientSeen", time="timestamp",
    step=ALL_TIME, measures=_LAST_SEEN,
    dimensions=(Dimension("destination_host"), Dimension("client_ip"), Dimension("client_host"), Dimension("user"),
                Dimension("domain")),
))
HOURLY = (CLIENTS, DESTINATIONS, REQUESTS, AGENTS)
SUMMED = (*HOURLY, CLIENTS_DAILY, DESTINATIONS_DAILY)
SEEN = (CLIENTS_SEEN, HOSTS_SEEN, HOST_CLIENTS_SEEN)
ROLLUPS = SUMMED + SEEN


def count_batch(rows, columns):
    """{Rollup: Counter of its keys -> measures} of rows stored as tuples in `columns` order, in one pass: the
    counts core.count_rows makes of the same rows as mappings, without building a mapping per row."""
    at = {name: columns.index(name) for name in columns}
    time, blocked, size, agent, category = (at[name] for name in ("timestamp", "blocked", "bytes", "user_agent",
                                                                  "user_agent_category"))

    def picker(*names):
        return itemgetter(*(at[name] for name in names))

    client = picker("client_ip", "client_host", "client_network")
    destination = picker("destination", "destination_host", "domain", "destination_is_ip", "waf_category")
    request = picker("method", "http_status", "result_code", "file_extension")
    host = picker("destination_host", "domain")
    host_client = picker("destination_host", "client_ip", "client_host", "user", "domain")
    clients, destinations, requests, agents = {}, {}, {}, {}
    clients_seen, hosts_seen, host_clients_seen = {}, {}, {}
    summed = ((clients, client), (destinations, destination), (requests, request))
    hour = low = high = None
    for row in rows:
        moment = row[time]
        if moment.tzinfo is None:
            moment = core._aware(moment)
        if low is None or not low <= moment < high:
            # A batch's rows come in time order, mostly: the hour changes seldom.
            hour = low = core.EPOCH + (moment - core.EPOCH) // HOUR * HOUR
            high = low + HOUR
        refused, sent = 1 if row[blocked] else 0, row[size] or 0
        for counts, pick in summed:
            key = (hour, pick(row))
            values = counts.get(key)
            if values is None:
                counts[key] = [1, refused, sent]
            else:
                values[0] += 1
                values[1] += refused
                values[2] += sent
        text = row[agent]
        key = (hour, text[:AGENT_LENGTH] if text else text, row[category])
        agents[key] = agents.get(key, 0) + 1
        for seen, pick in ((clients_seen, client), (hosts_seen, host), (host_clients_seen, host_client)):
            key = pick(row)
            latest = seen.get(key)
            if latest is None or moment > latest:
                seen[key] = moment
    out = {rollup: Counter({(bucket, *key): tuple(values) for (bucket, key), values in counts.items()})
           for rollup, counts in ((CLIENTS, clients), (DESTINATIONS, destinations), (REQUESTS, requests))}
    out[AGENTS] = Counter(agents)
    for hourly, daily in DAILY.items():
        days = {}
        for (hour, *key), values in out[hourly].items():
            day = core.EPOCH + (hour - core.EPOCH) // core.DAY * core.DAY
            total = days.get((day, *key))
            days[(day, *key)] = values if total is None else tuple(map(int.__add__, total, values))
        out[daily] = Counter(days)
    for rollup, seen in ((CLIENTS_SEEN, clients_seen), (HOSTS_SEEN, hosts_seen),
                         (HOST_CLIENTS_SEEN, host_clients_seen)):
        out[rollup] = Counter({(SEEN_BUCKET, *key): moment for key, moment in seen.items()})
    return out


def forget_unseen(*, using=DEFAULT_DB_ALIAS):
    """Drop the last-seen rows of keys whose latest request is older than every entry left (all when none is)."""
    from proxylogs.models import ProxyLogEntry

    oldest = ProxyLogEntry._base_manager.using(using).aggregate(oldest=Min("timestamp"))["oldest"]
    for rollup in SEEN:
        rows = rollup.rollup_model._base_manager.using(using)
        (rows.all() if oldest is None else rows.filter(last_seen__lt=oldest)).delete()


def clear(*, using=DEFAULT_DB_ALIAS):
    """Empty these rollups (with the entries)."""
    core.clear(ENTRY, using=using, rollups=ROLLUPS)


def rebuild(*, using=DEFAULT_DB_ALIAS):
    """Recount these rollups from the entries, in SQL (after a restore, or to fill them the first time)."""
    core.rebuild(ENTRY, using=using, rollups=ROLLUPS)
