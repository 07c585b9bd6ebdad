"""The rollups the proxy dashboards and summaries read, kept exact at write time through vpnmonitor.rollups.

Four hourly rollups of ProxyLogEntry, each requests, refused requests and bytes (the agents' requests only),
and the whole days of the first three (CLIENTS_DAILY, DESTINATIONS_DAILY, REQUESTS_DAILY, for long windows):

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
from bisect import bisect_left
from collections import Counter
from itertools import compress, islice, repeat
from operator import attrgetter, itemgetter, le

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
# The whole days of the first two (and of REQUESTS, below), for long windows: a window reads its whole days from
# these, the partial days at its edges from the hourly rollups, and only a partial hour from the entries.
CLIENTS_DAILY = core.register(Rollup(
    name="proxylogs.clients_daily", source=ENTRY, model="proxylogs.ProxyLogClientDay", time="timestamp",
    step=core.DAY, bucket="day", dimensions=CLIENTS.dimensions, measures=_SUMS,
))
DESTINATIONS_DAILY = core.register(Rollup(
    name="proxylogs.destinations_daily", source=ENTRY, model="proxylogs.ProxyLogDestinationDay", time="timestamp",
    step=core.DAY, bucket="day", dimensions=DESTINATIONS.dimensions, measures=_SUMS,
))
REQUESTS = core.register(Rollup(
    name="proxylogs.requests", source=ENTRY, model="proxylogs.ProxyLogRequestHour", time="timestamp", step=HOUR,
    bucket="hour", measures=_SUMS,
    dimensions=(Dimension("method"), Dimension("http_status"), Dimension("result_code"),
                Dimension("file_extension")),
))
REQUESTS_DAILY = core.register(Rollup(
    name="proxylogs.requests_daily", source=ENTRY, model="proxylogs.ProxyLogRequestDay", time="timestamp",
    step=core.DAY, bucket="day", dimensions=REQUESTS.dimensions, measures=_SUMS,
))
DAILY = {CLIENTS: CLIENTS_DAILY, DESTINATIONS: DESTINATIONS_DAILY, REQUESTS: REQUESTS_DAILY}
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
SUMMED = (*HOURLY, *DAILY.values())
SEEN = (CLIENTS_SEEN, HOSTS_SEEN, HOST_CLIENTS_SEEN)
ROLLUPS = SUMMED + SEEN


def count_batch(rows, columns, *, daily=True):
    """{Rollup: Counter of its keys -> measures} of rows stored as tuples in `columns` order: the counts
    core.count_rows makes of the same rows as mappings, made an hour of rows at a time by the counting and
    mapping builtins rather than row by row. daily=False leaves out the daily rollups, for a writer that
    upserts them from the hourly counts (prepare).

    The rows are taken in time order (an import's batch mostly is already; others are sorted first), so an
    hour's rows lie together, and the last time a key is seen in the batch is its latest."""
    at = {name: index for index, name in enumerate(columns)}
    time = at["timestamp"]
    moments = list(map(itemgetter(time), rows))
    if None in map(attrgetter("tzinfo"), moments):
        moments = [core._aware(moment) if moment.tzinfo is None else moment for moment in moments]
    if not all(map(le, moments, islice(moments, 1, None))):
        order = sorted(range(len(rows)), key=moments.__getitem__)
        rows, moments = [rows[index] for index in order], [moments[index] for index in order]

    def keys(bucket, part, rollup):
        # The rollup's key tuples (bucket, *dimensions) of the rows, built column by column (its dimensions copy
        # their source fields).
        return list(zip(repeat(bucket), *(map(itemgetter(at[dimension.source]), part)
                                          for dimension in rollup.dimensions)))

    out = {rollup: Counter() for rollup in (CLIENTS, DESTINATIONS, REQUESTS, AGENTS)}
    agent, blocked, size = itemgetter(at["user_agent"], at["user_agent_category"]), itemgetter(at["blocked"]), \
        itemgetter(at["bytes"])
    start, total = 0, len(rows)
    while start < total:
        hour = core.EPOCH + (moments[start] - core.EPOCH) // HOUR * HOUR
        stop = bisect_left(moments, hour + HOUR, start)
        part = rows[start:stop]
        summed = ((out[CLIENTS], keys(hour, part, CLIENTS)),
                  (out[DESTINATIONS], keys(hour, part, DESTINATIONS)),
                  (out[REQUESTS], keys(hour, part, REQUESTS)))
        sent = ({}, {}, {})
        sent_client, sent_destination, sent_request = sent
        for client, destination, request, sent_bytes in zip(*(rollup_keys for _, rollup_keys in summed),
                                                             map(size, part), strict=True):
            if sent_bytes:
                sent_client[client] = sent_client.get(client, 0) + sent_bytes
                sent_destination[destination] = sent_destination.get(destination, 0) + sent_bytes
                sent_request[request] = sent_request.get(request, 0) + sent_bytes
        refused = list(map(blocked, part))
        for (counts, rollup_keys), sums in zip(summed, sent, strict=True):
            refusals = Counter(compress(rollup_keys, refused))
            for key, requests in Counter(rollup_keys).items():
                counts[key] = (requests, refusals.get(key, 0), sums.get(key, 0))
        agents = out[AGENTS]
        for (text, category), requests in Counter(map(agent, part)).items():
            key = (hour, text[:AGENT_LENGTH] if text else text, category)
            agents[key] = agents.get(key, 0) + requests
        start = stop
    if daily:
        for hourly, whole_days in DAILY.items():
            out[whole_days] = core.coarsen(hourly, whole_days, out[hourly])
    for rollup in SEEN:
        # In time order, a key's last row is its latest.
        out[rollup] = dict(zip(keys(SEEN_BUCKET, rows, rollup), moments, strict=True))
    return {rollup: out[rollup] for rollup in ROLLUPS if rollup in out}


def prepare(counts):
    """Counts of count_batch(daily=False), with any other rollups', encoded as upserts (core.prepare), the
    daily rollups' included: each sums the parameters of its hourly rollup's upsert into days, in SQL on
    PostgreSQL (core.prepare_coarser), so a batch's days cost no encoding. In the order count_batch gives."""
    prepared = {rollup: core.prepare(rollup, value) for rollup, value in counts.items()}
    for hourly, whole_days in DAILY.items():
        if hourly in prepared:
            prepared[whole_days] = core.prepare_coarser(hourly, whole_days, prepared[hourly])
    return {**{rollup: value for rollup, value in prepared.items() if rollup not in ROLLUPS},
            **{rollup: prepared[rollup] for rollup in ROLLUPS if rollup in prepared}}


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
