"""Retention under load: prune the oldest day of the proxy logs and of the flows while 4 clients keep reading.

    DATABASE_URL=postgres://... python -m bench retention [--proxy-rows 10000000] [--flows 10000000]
        [--flow-days 7] [--readers 4] [--baseline 20] [--no-vacuum]

The tables are filled by the proxylogs and flowreports benchmarks' own fillers when they hold fewer rows than
asked (a database they already filled is used as it is). Reader processes (one connection each, like server
workers) call, round robin, the read endpoints users hit through Django's test client: /api/logs first page
and a deep page in time order, /api/logs/stats, /api/v1/flow-reports first page and its /stats. Their
latencies are taken for a baseline period with no pruning, then while vpnmonitor.retention.prune removes the
oldest day of each dataset (the clock handed to prune is set so that the policy's days leave exactly that day
out), then while VACUUM ANALYZE runs on the tables pruned by DELETE (what autovacuum does after the deletes). A
table partitioned by day (the flows and the proxy logs on PostgreSQL, vpnmonitor.partitions) is pruned by whole
days: the oldest day's partition, from the oldest row to the end of its UTC day, is dropped with its rollup
buckets (the proxy logs' last-seen tables then forget the keys no entry is left of); it leaves no dead rows, so
it has no VACUUM phase. Each read slower than its baseline p95 + 100 ms is counted with the phase it fell in.

Every statement of the prune is timed on its connection, so that each read slower than its baseline p95 +
100 ms is put beside the statement it overlapped most: the batch's id SELECT, its row lock, the batch DELETE,
the rollup subtract before it (proxy logs or flows, both through vpnmonitor.rollups), or VACUUM.

Target (issue 23, PostgreSQL, 10M proxy-log rows over 30 days and 10M flows over 7 days): no read beyond its
baseline p95 + 100 ms while a day is pruned.
"""

import argparse
import datetime as dt
import multiprocessing
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

from bench.datasets import analyze, percentile

DEEP = 1_000_000
ENDPOINTS = [
    "/api/logs",
    f"/api/logs?offset={DEEP}&sort=timestamp&order=desc",
    "/api/logs/stats",
    "/api/v1/flow-reports",
    "/api/v1/flow-reports/stats",
]
STALL_MS = 100


def _reader(number, stop, results):
    """One client: the endpoints round robin until stop is set; (endpoint, started, ended) on the monotonic clock."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from vpnmonitor.api.throttling import PrincipalRateThrottle

    PrincipalRateThrottle.allow_request = lambda self, request, view: True
    client = APIClient(SERVER_NAME="localhost")
    client.force_authenticate(get_user_model().objects.get(username="bench"))
    samples = []
    turn = number
    while not stop.is_set():
        path = ENDPOINTS[turn % len(ENDPOINTS)]
        turn += 1
        started = time.monotonic()
        response = client.get(path)
        ended = time.monotonic()
        if response.status_code != 200:
            results.put(("error", f"{path}: {response.status_code} {response.content[:200]!r}"))
            return
        samples.append((path, started, ended))
    results.put(("samples", samples))


def _kind(sql):
    text = " ".join(sql.split()).lower()
    if text.startswith("vacuum"):
        return "VACUUM ANALYZE"
    # A table partitioned by day (vpnmonitor.partitions) drops its days instead.
    if "detach partition" in text:
        return "partition DETACH"
    if text.startswith("drop table"):
        return "partition DROP"
    if text.startswith("select count(*) from"):
        return "partition row count"
    if "pg_advisory_lock" in text or "pg_advisory_unlock" in text or "pg_inherits" in text or "pg_class" in text:
        return "partition lock and catalog"
    if text.startswith("delete from") and "seen" in text:
        return "last-seen keys forgotten (DELETE)"
    if "min(" in text and "proxylogentry" in text:
        return "oldest entry left (MIN)"
    if text.startswith("delete from") and "_p2" not in text and ("hour" in text or "day" in text) \
            and "in (" not in text:
        return "rollup bucket drop (DELETE of whole buckets)"
    if "proxylog" in text and ("proxyloghour" in text or "group by" in text):
        return "proxy-log rollup subtract"
    if any(word in text for word in ("rollup", "hourly", "daily", "sealedhour", "date_trunc", "advisory")):
        return "flow rollup subtract"
    if text.startswith("delete"):
        return "batch DELETE"
    if "for update" in text:
        return "batch row lock (SELECT ... FOR UPDATE)"
    if text.startswith("select") and "limit" in text:
        return "batch id SELECT"
    if "retentionpolicy" in text:
        return "policy bookkeeping"
    return "other: " + text[:40]


@contextmanager
def _statements(log):
    """Time every statement this connection runs into log: (kind, started, ended)."""
    from django.db import connection

    def wrapper(execute, sql, params, many, context):
        started = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            log.append((_kind(sql), started, time.monotonic()))

    with connection.execute_wrapper(wrapper):
        yield


def _fill(proxy_rows, flows, flow_days):
    from bench import flowreports, proxylogs
    from flowreports.models import FlowReport
    from proxylogs.models import ProxyLogEntry

    rows = []
    have = ProxyLogEntry.objects.count()
    if have < proxy_rows:
        print(f"proxy logs: {have:,} rows, filling to {proxy_rows:,}")
        have = proxylogs.top_up(proxy_rows)
    flow_count = FlowReport.objects.count()
    if flow_count < flows:
        print(f"flows: {flow_count:,}, generating {flows:,} over {flow_days} days")
        from django.db import connection

        if connection.vendor == "postgresql":
            flow_count = flowreports.generate_sql(flows, flow_days, 1000)
        else:
            flow_count = flowreports.generate(flows, flow_days, 1000)[0]
    analyze()
    rows.append(("dataset", f"{have:,} proxy-log rows, {flow_count:,} flows"))
    return rows


def _prune_oldest_day(name, model, field, log):
    """Prune dataset `name` with the clock set so that its policy keeps all but the oldest day; (rows, s, cutoff)."""
    from vpnmonitor import retention

    oldest = model._base_manager.order_by(field).values_list(field, flat=True).first()
    days = retention.retention_days(name)
    cutoff = oldest + dt.timedelta(days=1)
    with _statements(log):
        started = time.monotonic()
        deleted = retention.prune(name, now=cutoff + dt.timedelta(days=days))
        ended = time.monotonic()
    return deleted, started, ended, cutoff


def _vacuum(tables, log):
    from django.db import connection

    with _statements(log), connection.cursor() as cursor:
        started = time.monotonic()
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
        return started, time.monotonic()


def _during(samples, start, end):
    return [s for s in samples if s[1] < end and s[2] > start]


def _culprit(log, started, ended):
    """The statement kind that overlapped [started, ended] longest."""
    overlap = Counter()
    for kind, s, e in log:
        if s < ended and e > started:
            overlap[kind] += min(e, ended) - max(s, started)
    return overlap.most_common(1)[0][0] if overlap else "none (between statements)"


def run(argv):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections

    from flowreports.models import FlowReport
    from proxylogs.models import ProxyLogEntry
    from vpnmonitor import partitions

    parser = argparse.ArgumentParser(prog="python -m bench retention")
    parser.add_argument("--proxy-rows", type=int, default=10_000_000)
    parser.add_argument("--flows", type=int, default=10_000_000)
    parser.add_argument("--flow-days", type=int, default=7)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=20, help="seconds of reads before any pruning")
    parser.add_argument("--no-vacuum", action="store_true", help="skip the VACUUM ANALYZE phase")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        print("warning: the target is for PostgreSQL; this is", connection.vendor)

    call_command("migrate", verbosity=0)
    rows = _fill(args.proxy_rows, args.flows, args.flow_days)
    get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})

    connections.close_all()  # each reader opens its own connection after the fork
    context = multiprocessing.get_context("fork")
    stop, results = context.Event(), context.Queue()
    readers = [context.Process(target=_reader, args=(n, stop, results)) for n in range(args.readers)]
    for reader in readers:
        reader.start()
    phases, log = [], []
    try:
        time.sleep(3)  # warm-up: first requests, connections, caches
        baseline = (time.monotonic(), None)
        time.sleep(args.baseline)
        phases.append(("baseline", baseline[0], time.monotonic()))
        pruned = {}
        for name, model, field in (("proxy_logs", ProxyLogEntry, "timestamp"),
                                   ("flowreports", FlowReport, "start_time")):
            print(f"pruning the oldest day of {name}")
            deleted, started, ended, cutoff = _prune_oldest_day(name, model, field, log)
            pruned[name] = (deleted, ended - started, cutoff)
            phases.append((f"prune {name}", started, ended))
            print(f"  {deleted:,} rows in {ended - started:.1f} s")
            time.sleep(2)
        # Only a table pruned by DELETE has dead rows for autovacuum; a dropped partition leaves none (and
        # autovacuum never analyzes a partitioned table's parent).
        deleted_from = [model._meta.db_table for model in (ProxyLogEntry, FlowReport)
                        if not partitions.partitioned(model)]
        if not args.no_vacuum and connection.vendor == "postgresql" and deleted_from:
            print("VACUUM ANALYZE", ", ".join(deleted_from))
            started, ended = _vacuum(deleted_from, log)
            phases.append((f"VACUUM ANALYZE {', '.join(deleted_from)}", started, ended))
            print(f"  {ended - started:.1f} s")
        elif not deleted_from:
            rows.append(("VACUUM ANALYZE", "not run: both tables are pruned by dropping partitions, which leaves no "
                                           "dead rows"))
        time.sleep(1)
    finally:
        stop.set()
        samples = []
        for _ in readers:
            kind, payload = results.get(timeout=120)
            if kind == "error":
                raise RuntimeError(payload)
            samples += payload
        for reader in readers:
            reader.join()

    by_path = defaultdict(list)
    for sample in samples:
        by_path[sample[0]].append(sample)
    start, end = phases[0][1], phases[0][2]
    base = {path: percentile([(e - s) * 1000 for _, s, e in _during(items, start, end)], 0.95)
            for path, items in by_path.items()}

    for name, (deleted, seconds, cutoff) in pruned.items():
        rows.append((f"prune {name}: oldest day (before {cutoff:%Y-%m-%d %H:%M} UTC)",
                     f"{deleted:,} rows deleted in {seconds:.1f} s"))
    kinds = defaultdict(list)
    for kind, s, e in log:
        kinds[kind].append((e - s) * 1000)
    for kind, durations in sorted(kinds.items()):
        rows.append((f"statement: {kind}", f"{len(durations):,} run, total {sum(durations) / 1000:.1f} s, "
                                            f"p95 {percentile(durations, 0.95):.0f} ms, max {max(durations):.0f} ms"))
    met, worst = True, (0.0, "")
    for phase, start, end in phases:
        for path in ENDPOINTS:
            latencies = [(e - s) * 1000 for _, s, e in _during(by_path[path], start, end)]
            if not latencies:
                rows.append((f"{phase}: GET {path}", "no request"))
                continue
            if phase == "baseline":
                rows.append((f"baseline: GET {path}", f"p95 {base[path]:.0f} ms ({len(latencies)} requests)"))
                continue
            stall = max(latencies) - base[path]
            if stall > STALL_MS:
                met = False
            if stall > worst[0]:
                worst = (stall, f"{phase}, GET {path}")
            rows.append((f"{phase}: GET {path}",
                         f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms, worst stall "
                         f"{stall:+.0f} ms over baseline p95 ({len(latencies)} requests)"))
    slow = Counter()
    for path, items in by_path.items():
        for _, s, e in items:
            if (e - s) * 1000 > base[path] + STALL_MS:
                phase = next((name for name, start, end in phases if s < end and e > start), "between phases")
                slow[phase, _culprit(log, s, e)] += 1
    for (phase, kind), count in slow.most_common():
        rows.append((f"reads beyond baseline p95 + {STALL_MS} ms: {phase}, overlapping most: {kind}", f"{count}"))
    rows.append((f"no read beyond baseline p95 + {STALL_MS} ms (target)",
                 ("yes" if met else "no") + (f"; worst {worst[0]:+.0f} ms in {worst[1]}" if worst[1] else "")))
    return rows
