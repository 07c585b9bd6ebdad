"""Proxy access logs: import rate end to end (beside GoAccess), import memory, and API latency on a big table.

    DATABASE_URL=postgres://... python -m bench proxylogs [--lines N] [--rows N] [--skip-import] [--big-gib G]

The "read, parse, derive, count alone" row times the Python side of the import (the rollup counts included since
2026-12-03) on the same file without the database. The database side (COPY into the indexed table, the rollups'
upserts, the commits) runs alongside it in the import, so on an idle machine the slower side bounds the end-to-end
rate, and on a busy one nearer their sum.
"import CPU per line" is the CPU time of this process and of its PostgreSQL backend (read from /proc when the
server runs on this host) divided by the lines imported: on a shared machine it moves far less than the rate,
so it is the number to compare two versions of the import by.

Targets (issue 23, PostgreSQL): the import end to end at least 0.5x GoAccess on the same file, both timed in the
same run so that they see the same load. Issue 6: import >= 100k lines/s end to end; a 2 GB file in < 200 MB RSS
(the import is parsed and copied in 2 MiB chunks, so RSS does not grow with the file: compare peak RSS for two
file sizes); with 10M rows, /api/logs first page with total p95 < 50 ms, stats and a 720-hour timeline p95 < 200 ms.
Issue 23: with 10M rows, /api/logs?offset=1000000&sort=timestamp (both orders) p95 < 100 ms; the other sorts
are timed too, first page and that offset (5 requests each), for the costs the OpenAPI descriptions of sort
and offset state.
On PostgreSQL --rows tops the table up in SQL (INSERT ... SELECT, 1M rows a statement, then counted into the
hourly rollup in SQL); with --skip-import only the table size and the API latencies are measured.
"""

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from bench.datasets import analyze, latency_ms, rng, timed_threads

HOSTS = ["www.google.com", "github.com", "fonts.gstatic.com", "www.bbc.co.uk", "outlook.office365.com",
         "cdn.jsdelivr.net", "www.dropbox.com", "deb.debian.org", "pypi.org", "ads.tracker.example"]
PATHS = ["/", "/index.html", "/static/app.js", "/img/logo.png", "/files/report.pdf", "/search?q=term"]


# Lines an hour in the generated logs: a proxy that logs 10M requests a month (about 14,000 an hour), so a
# 300,000-line file covers about 21 hours, as a real proxy's log of that size does, and an import batch falls in
# one or two hours (the rollups see the repeats of a real log, not a new key for nearly every line).
LINES_PER_HOUR = 10_000_000 / (30 * 24)


def write_log(path, lines, seed=7):
    """A native-format Squid log of `lines` lines, LINES_PER_HOUR of them an hour (10M a month), up to now."""
    random = rng(seed)
    # A proxy serves a bounded population of clients: 2,000 here.
    clients = [f"10.{n // 250 % 4}.{n // 4 % 250}.{n % 250 + 1}" for n in range(2000)]
    step = 3600 / LINES_PER_HOUR
    start = time.time() - lines * step
    with open(path, "w") as out:
        for n in range(lines):
            stamp = start + n * step
            client = random.choice(clients)
            host = random.choice(HOSTS)
            if random.random() < 0.5:
                code, status, method, url = "TCP_TUNNEL", 200, "CONNECT", f"{host}:443"
                if host.startswith("ads"):
                    code, status = "TCP_DENIED", 403
                hier, mime = f"HIER_DIRECT/{host}", "-"
            elif random.random() < 0.03:
                code, status, method, url = "TCP_DENIED", 403, "CONNECT", f"203.0.113.{random.randint(1, 254)}:443"
                hier, mime = "HIER_NONE/-", "text/html"
            else:
                code, status, method = "TCP_MISS", random.choice([200, 200, 200, 304, 404]), "GET"
                url, hier, mime = f"http://{host}{random.choice(PATHS)}", f"HIER_DIRECT/{host}", "text/html"
            out.write(f"{stamp:.3f} {random.randint(0, 999):6d} {client} {code}/{status} "
                      f"{random.randint(0, 200000)} {method} {url} - {hier} {mime}\n")


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu_seconds(pid):
    """CPU time of this connection's PostgreSQL backend, when the server runs on this host (else None)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_file(path):
    """Import the file; returns the result, the seconds, and CPU microseconds per line (Python, server or None).

    On a shared machine the rate follows the load; the CPU time per line does not, or much less, so it is the
    number to compare between two versions of the import.
    """
    from django.db import connection

    from proxylogs import services

    source = services.source_for_path(path)
    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    own, server = _own_cpu_seconds(), backend and _backend_cpu_seconds(backend)
    started = time.perf_counter()
    result = services.import_source(source)
    seconds = time.perf_counter() - started
    lines = max(result.imported, 1)
    own = (_own_cpu_seconds() - own) / lines * 1e6
    if server is not None:
        after = _backend_cpu_seconds(backend)
        server = (after - server) / lines * 1e6 if after is not None else None
    return result, seconds, (own, server)


def parse_rate(path, lines):
    """Read, parse and derive the file's rows in this process alone, without the database (the Python side)."""
    from proxylogs import services
    from proxylogs.models import LogSource

    source = LogSource(path=path, format=LogSource.Format.SQUID, pk=0)
    waf = services.WafTagger.enabled()
    started = time.perf_counter()
    rows = sum(len(batch.rows) for batch in services._prepare_batches(source, {}, waf, services.BATCH_BYTES))
    seconds = time.perf_counter() - started
    return f"{rows / seconds:,.0f} lines/s ({lines:,} lines in {seconds:.1f} s)"


def goaccess_rate(path, lines):
    """(text, lines per second) of GoAccess on the file; the rate is None when GoAccess is not installed."""
    binary = shutil.which("goaccess")
    if binary is None:
        return "goaccess not installed", None
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        # GoAccess's predefined SQUID format does not take the padded elapsed column; this one is equivalent.
        subprocess.run([binary, path, "--log-format=%x.%^ %~%L %h %^/%s %b %m %U %^ %^ %M", "--datetime-format=%s",
                        "--no-global-config", "-o", f"{work}/report.json"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    return f"{lines / seconds:,.0f} lines/s ({seconds:.1f} s, JSON report)", lines / seconds


# Run in a child process so that its peak RSS is the import's alone (manage.py import_proxy_log, as an operator would).
_IMPORT_CHILD = """
import os, resource, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmonitor.settings")
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
# As in production: with DEBUG on, Django keeps the last 9,000 statements' SQL with their parameters (the rollup
# upserts' arrays), hundreds of MiB that are not the import's.
settings.DEBUG = False
started = time.perf_counter()
call_command("import_proxy_log", sys.argv[1], "--no-progress", stdout=open(os.devnull, "w"))
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def big_import(gib):
    """Generate a log of about `gib` GiB (streamed to disk), import it in a child process: rate and peak RSS."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "big-access.log")
        write_log(path, 20000)
        lines = int(gib * 2**30 / (os.path.getsize(path) / 20000))
        write_log(path, lines, seed=8)
        size = os.path.getsize(path)
        child = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, path], cwd=root, check=True,
                               capture_output=True, text=True)
        seconds, rss = (float(value) for value in child.stdout.split()[-2:])
    return [
        ("big import file", f"{lines:,} lines, {size / 2**30:.2f} GiB"),
        ("big import end to end (manage.py import_proxy_log)", f"{lines / seconds:,.0f} lines/s ({seconds:.0f} s)"),
        ("big import peak RSS (whole process)", f"{rss:,.0f} MiB"),
    ]


def top_up(rows):
    """Add synthetic entries by COPY until the table holds `rows` (no parsing: this only sizes the table)."""
    from django.db import connection, transaction

    from proxylogs.models import ProxyLogEntry
    from proxylogs.services import COLUMNS, store_rows

    have = ProxyLogEntry.objects.count()
    if connection.vendor == "postgresql":
        return _top_up_sql(have, rows)
    random = rng(11)
    now = dt.datetime.now(dt.UTC)
    span = 30 * 86400
    template = dict.fromkeys(COLUMNS)
    while have < rows:
        batch = []
        for _ in range(min(50000, rows - have)):
            client = f"10.{random.randint(0, 3)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            host = random.choice(HOSTS)
            blocked = random.random() < 0.05
            values = dict(template, timestamp=now - dt.timedelta(seconds=random.random() * span), elapsed_ms=5,
                          client_ip=client, client_network=client.rsplit(".", 1)[0] + ".0", method="CONNECT",
                          url=f"{host}:443", destination=f"{host}:443", destination_host=host, destination_port=443,
                          destination_is_ip=False, domain=host, http_status=403 if blocked else 200,
                          result_code="TCP_DENIED" if blocked else "TCP_TUNNEL", bytes=random.randint(0, 10**6),
                          hierarchy="HIER_DIRECT", blocked=blocked)
            batch.append(tuple(values[c] for c in COLUMNS))
        with transaction.atomic():
            store_rows(batch)
        have += len(batch)
    return have


# The rows of top_up, drawn by PostgreSQL (minutes for 10M rows where the Python loop takes an hour); each
# statement's rows are then counted into the rollups in SQL, in the same transaction, as store_rows counts the
# import's. The traffic is shaped like a proxy's: CLIENTS clients (a few logged by host name, a quarter
# authenticated as a user), a skewed popularity (client n is drawn with probability falling as 1/sqrt(n)),
# DESTINATIONS destination hosts with a heavy tail (the first 1% take about a third of the requests, the last half
# about a sixth), raw-address destinations, User-Agents on requests (not on CONNECT tunnels), file types, and
# WAF-tagged URLs. Rows are stamped in the order they are inserted, over the 30 days up
# to now, as an import stores a log: the rows of an hour lie together in the table.
CLIENTS = 2000
DESTINATIONS = 400
_TOP_UP_SQL = """
INSERT INTO proxylogs_proxylogentry (timestamp, elapsed_ms, client_ip, client_host, client_network, "user", method,
    url, destination, destination_host, destination_port, destination_is_ip, domain, file_extension, http_status,
    result_code, bytes, hierarchy, user_agent, user_agent_category, blocked, waf_category)
SELECT at, 5, CASE WHEN by_name THEN NULL ELSE client::inet END, CASE WHEN by_name THEN client END,
       CASE WHEN by_name THEN 'host-' || substr(md5(client), 1, 16) ELSE regexp_replace(client, '[0-9]+$', '0') END,
       CASE WHEN c %% 4 = 0 THEN 'user' || c END, method,
       CASE WHEN method = 'CONNECT' THEN host || ':443' ELSE 'http://' || host || path END,
       CASE WHEN method = 'CONNECT' THEN host || ':443' ELSE host END, host,
       CASE WHEN method = 'CONNECT' THEN 443 ELSE 80 END, is_ip, domain,
       CASE WHEN method = 'CONNECT' THEN NULL ELSE extension END,
       CASE WHEN blocked THEN 403 ELSE (ARRAY[200, 200, 200, 200, 304, 404, 206])[1 + floor(r1 * 7)::int] END,
       CASE WHEN blocked THEN 'TCP_DENIED' WHEN method = 'CONNECT' THEN 'TCP_TUNNEL'
            WHEN r1 < 0.3 THEN 'TCP_HIT' ELSE 'TCP_MISS' END,
       floor(r2 * r3 * 2000001)::bigint, 'HIER_DIRECT',
       CASE WHEN method <> 'CONNECT' THEN agent END, CASE WHEN method <> 'CONNECT' THEN agent_category END,
       blocked, waf
FROM (SELECT *, (listed OR r4 < 0.03 OR (waf IS NOT NULL AND r4 < 0.6)) AS blocked,
             (%(paths)s::text[])[1 + floor(r6 * %(path_count)s)::int] AS path,
             (%(extensions)s::text[])[1 + floor(r6 * %(path_count)s)::int] AS extension
      FROM (SELECT *, (%(hosts)s::text[])[1 + h] AS host, (%(domains)s::text[])[1 + h] AS domain,
                   (%(is_ip)s::bool[])[1 + h] AS is_ip, (%(listed)s::bool[])[1 + h] AS listed,
                   CASE WHEN c %% 50 = 7 THEN 'ws' || c || '.corp.example'
                        ELSE '10.' || (c / 250 %% 4) || '.' || (c / 4 %% 250) || '.' || (c %% 250 + 1) END AS client,
                   c %% 50 = 7 AS by_name,
                   (%(agents)s::text[])[1 + a] AS agent, (%(agent_categories)s::text[])[1 + a] AS agent_category,
                   CASE WHEN method <> 'CONNECT' AND r5 < 0.004
                        THEN (%(waf)s::text[])[1 + floor(r5 * 1250)::int] END AS waf
            FROM (SELECT %(now)s - interval '30 days' + (%(have)s + g - random()) * %(step)s AS at,
                         floor(%(clients)s * random() ^ 2)::int AS c,
                         floor(%(host_count)s * random() ^ 4)::int AS h,
                         floor(%(agent_count)s * random() ^ 3)::int AS a,
                         CASE WHEN random() < 0.55 THEN 'CONNECT' WHEN random() < 0.85 THEN 'GET' ELSE 'POST' END
                             AS method,
                         random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6
                  FROM generate_series(1, %(rows)s) AS g) AS drawn) AS placed) AS derived
ORDER BY at
"""

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Edg/120.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
    "Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "Debian APT-HTTP/1.3 (2.6.1)", "pip/23.3.2", "curl/8.5.0", "Wget/1.21.4",
    "python-requests/2.31.0", "Go-http-client/1.1", "okhttp/4.12.0", "Teams/1.6.00.33567 Electron/19.1.8",
    "Slack/4.36.140 Electron/27.1.3", "Dropbox/189.4.8395", "Zoom/5.17.1", "Spotify/1.2.26 Win32_x86_64",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Java/17.0.9", "Microsoft-CryptoAPI/10.0",
]
TOP_UP_PATHS = ["/", "/index.html", "/static/app.js", "/static/site.css", "/img/logo.png", "/img/photo.jpg",
                "/files/report.pdf", "/api/v1/items.json", "/download/setup.exe", "/media/clip.mp4",
                "/archive/data.zip", "/fonts/ui.woff2", "/search?q=term", "/favicon.ico", "/feed.xml",
                "/docs/sheet.xlsx"]
WAF_URLS = ["sql-injection", "xss", "path-traversal", "command-injection", "sensitive-files"]
SHADOW_HOSTS = ["www.dropbox.com", "dl.dropboxusercontent.com", "wetransfer.com", "mega.nz", "app.box.com",
                "drive.google.com", "docs.google.com", "onedrive.live.com", "pastebin.com",
                "gist.githubusercontent.com", "web.telegram.org", "web.whatsapp.com", "discord.com",
                "www.teamviewer.com", "anydesk.com", "ngrok.io", "www.torproject.org", "nordvpn.com", "trello.com",
                "www.notion.so"]


def destinations():
    """(hosts, registrable domains, raw address?, refused by the proxy?) of the DESTINATIONS destination hosts,
    most popular first: the benchmark's usual hosts, shadow-IT services, then a long tail of sites and a few
    raw addresses."""
    from proxylogs.ingest.domains import registrable_domain

    hosts = list(HOSTS)
    hosts[5:5] = SHADOW_HOSTS
    n = 0
    while len(hosts) < DESTINATIONS:
        n += 1
        hosts.append(f"203.0.113.{n // 13}" if n % 13 == 0 else f"{('www', 'cdn', 'api')[n % 3]}.site{n % 150}.com")
    hosts = list(dict.fromkeys(hosts))[:DESTINATIONS]
    is_ip = [host[0].isdigit() for host in hosts]
    return (hosts, [None if ip else registrable_domain(host) for host, ip in zip(hosts, is_ip, strict=True)], is_ip,
            [ip or host.startswith("ads.") or host.startswith("api.site1") for host, ip in zip(hosts, is_ip,
                                                                                               strict=True)])


def _top_up_sql(have, rows):
    from django.db import connection, transaction

    from proxylogs.ingest.domains import file_extension, user_agent_category
    from proxylogs.models import ProxyLogEntry
    from vpnmonitor import partitions, rollups

    now = dt.datetime.now(dt.UTC)
    # The days the rows are stamped in (the 30 up to now) get their partitions first, as any writer's.
    partitions.ensure(ProxyLogEntry, set(range(partitions.day_number(now - dt.timedelta(days=30)),
                                               partitions.day_number(now) + 1)))
    hosts, domains, is_ip, listed = destinations()
    params = {"now": now, "clients": CLIENTS, "hosts": hosts, "domains": domains, "is_ip": is_ip, "listed": listed,
              "host_count": len(hosts), "agents": AGENTS, "agent_categories": [user_agent_category(a) for a in AGENTS],
              "agent_count": len(AGENTS), "paths": TOP_UP_PATHS, "path_count": len(TOP_UP_PATHS),
              "extensions": [file_extension("http://h" + path) for path in TOP_UP_PATHS], "waf": WAF_URLS}
    table = connection.ops.quote_name(ProxyLogEntry._meta.db_table)
    while have < rows:
        chunk = min(1_000_000, rows - have)
        with transaction.atomic(), connection.cursor() as cursor:
            # The table is locked against other writers, so the statement's rows are those after the last id.
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
            last_id = cursor.fetchone()[0]
            cursor.execute(_TOP_UP_SQL, {**params, "rows": chunk, "have": have,
                                     "step": dt.timedelta(days=30) / rows})
            added = ProxyLogEntry.objects.filter(pk__gt=last_id)
            rollups.apply({rollup: rollups.counts_in(rollup, added) for rollup in rollups.of(ProxyLogEntry)})
        have += chunk
        print(f"  {have:,} rows", end="\r", flush=True)
    print()
    # The days that are over get their client index, as the hourly beat task builds it.
    built = partitions.index_closed()
    if built:
        print(f"  client index built on {built} days")
    return have


DEEP = 1_000_000


def api_latency():
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
    client = APIClient(SERVER_NAME="localhost")
    client.force_authenticate(user)

    def get(path):
        def call():
            response = client.get(path)
            assert response.status_code == 200, response.content[:200]
        return call

    paths = {path: 40 for path in (
        "/api/logs", "/api/logs/stats", "/api/logs/timeline?hours=720",
        # Deep pages in time order: the offset becomes a time boundary through the hourly rollup (issue 23).
        f"/api/logs?offset={DEEP}&sort=timestamp&order=asc", f"/api/logs?offset={DEEP}&sort=timestamp&order=desc")}
    # The other sorts have no index (each would cost every imported line its upkeep): a top-N sort over the
    # table, first page and deep, 5 requests each; the bounds the OpenAPI description of sort and offset state.
    paths.update({f"/api/logs?sort={sort}&order={order}": 5 for sort, order in (
        ("bytes", "desc"), ("source_ip", "asc"), ("source_ip", "desc"), ("destination", "desc"), ("status", "desc"),
        ("method", "desc"))})
    paths.update({f"/api/logs?offset={DEEP}&sort=bytes&order=desc": 5,
                  f"/api/logs?offset={DEEP}&sort=source_ip&order=asc": 5})
    # A client's details read its entries through the client index of each day that is over, and the current
    # day's through its time index: the busiest client and one of the least busy, over a day and over 30.
    paths.update({f"/api/clients/{address}/details?hours={hours}": 10 for address in ("10.0.0.1", "10.3.249.250")
                  for hours in (24, 720)})
    return {path: latency_ms(get(path), repeat=repeat, warmup=1 if repeat < 10 else 3)
            for path, repeat in paths.items()}


# The summaries of issue "proxy dashboards and summaries" (p95 < 200 ms at 10M rows), at their default windows and
# at the longest one (720 hours), and the proxy page of the dashboard at each of its windows.
DASHBOARD_PATHS = (
    "/api/dashboard/summary", "/api/dashboard/summary?hours=168", "/api/dashboard/summary?hours=720",
    "/api/clients/statistics", "/api/clients/statistics?hours=720", "/api/domains/statistics",
    "/api/domains/statistics?hours=720", "/api/traffic/statistics", "/api/traffic/statistics?period=month",
    "/api/analytics/top-domains", "/api/analytics/top-domains?hours=720", "/api/analytics/user-agents",
    "/api/analytics/user-agents?hours=720", "/api/analytics/file-extensions",
    "/api/analytics/file-extensions?hours=720", "/api/analytics/shadow-it", "/api/analytics/shadow-it?hours=720",
    "/api/waf/stats", "/api/waf/stats?hours=720",
    "/dashboard/proxy/", "/dashboard/proxy/?window=3d", "/dashboard/proxy/?window=7d",
)


def dashboard_latency(repeat=20):
    """{path: (p50, p95)} of the proxy summaries and the proxy page, as a superuser (session for the page)."""
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework.test import APIClient

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
    api = APIClient(SERVER_NAME="localhost")
    api.force_authenticate(user)
    page = Client(SERVER_NAME="localhost")
    page.force_login(user)

    def get(path):
        client = page if path.startswith("/dashboard/") else api

        def call():
            response = client.get(path)
            assert response.status_code == 200, response.content[:200]
        return call

    return {path: latency_ms(get(path), repeat=repeat, warmup=2) for path in DASHBOARD_PATHS}


def rollup_sizes():
    """Rows and on-disk size (with indexes) of the entries and of each proxylogs rollup table."""
    from django.db import connection

    from proxylogs import dashboard_rollups
    from proxylogs.models import ProxyLogEntry, ProxyLogHour

    models = [ProxyLogEntry, ProxyLogHour, *(rollup.rollup_model for rollup in dashboard_rollups.ROLLUPS)]
    out = []
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            cursor.execute(f"SELECT count(*), pg_total_relation_size(%s) FROM {connection.ops.quote_name(table)}",
                           [table])
            count, size = cursor.fetchone()
            out.append((f"table {table}", f"{count:,} rows, {size / 2**20:,.0f} MiB"))
    return out


def rebuild_rollups():
    """Empty and recount the dashboard rollups from the entries in SQL, as migration 0014 fills them: seconds."""
    from proxylogs import dashboard_rollups

    started = time.perf_counter()
    dashboard_rollups.rebuild()
    return time.perf_counter() - started


def database_ceiling(lines):
    """lines/s of the database alone: the import's COPYs without the Python that reads, parses and sends them.

    The rows of `lines` generated lines are prepared once by the import's own code (_prepare_batches) and
    written, one file per import batch, in PostgreSQL's binary COPY format by the server itself. Each file is
    then loaded with a server-side COPY into the log table (all its indexes) and committed, as the import
    commits each batch: first from one connection, then from two at once. With the file reading, parsing,
    deriving and encoding gone, the rate with both cores given to the server is an upper bound for the import
    end to end on this machine. The hourly rollup's upsert (one small statement per batch) is left out: the
    rows added are deleted again, without it too, so the rollup is left as it was.
    """
    import psycopg
    import psycopg.sql
    from django.core.management import call_command
    from django.db import connection

    from proxylogs import services
    from proxylogs.models import LogSource, ProxyLogEntry

    call_command("migrate", verbosity=0)
    quote = connection.ops.quote_name
    table = quote(ProxyLogEntry._meta.db_table)
    columns = ", ".join(quote(column) for column in services.COLUMNS)
    staging = "bench_proxylogs_ceiling"
    before = ProxyLogEntry.objects.count()
    directory = tempfile.mkdtemp(prefix="vpnmonitor-ceiling-")
    os.chmod(directory, 0o777)
    rows, files = [], []
    try:
        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "access.log")
            write_log(path, lines)
            source = LogSource(path=path, format=LogSource.Format.SQUID, pk=0)
            waf = services.WafTagger.enabled()
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {staging}")
                cursor.execute(f"CREATE TABLE {staging} AS SELECT {columns} FROM {table} WITH NO DATA")
            batches = services._prepare_batches(source, {}, waf, services.BATCH_BYTES)
            for number, batch in enumerate(batches):
                with connection.cursor() as cursor:
                    cursor.execute(f"TRUNCATE {staging}")
                with connection.connection.cursor() as cursor:
                    cursor.adapters.register_dumper(None, services._inet_dumper())
                    with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(services.COPY_TYPES)
                        for row in batch.rows:
                            copy.write_row(row)
                name = os.path.join(directory, f"batch-{number:05d}.copy")
                with connection.cursor() as cursor:
                    cursor.execute(f"COPY {staging} ({columns}) TO %s (FORMAT BINARY)", [name])
                files.append((name, len(batch.rows)))
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {staging}")
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(id) FROM {table}")
            last_id = cursor.fetchone()[0] or 0
        settings = connection.settings_dict
        dsn = {"host": settings["HOST"], "port": settings["PORT"] or 5432, "user": settings["USER"],
               "dbname": settings["NAME"], "password": settings["PASSWORD"] or None}
        rows.append(("database ceiling input", f"{lines:,} lines in {len(files)} batch files; table holds "
                                               f"{before:,} rows"))

        def load(chunk):
            with psycopg.connect(**dsn) as conn, conn.cursor() as cursor:
                for name, _ in chunk:
                    cursor.execute(psycopg.sql.SQL(f"COPY {table} ({columns}) FROM {{}} (FORMAT BINARY)")
                                   .format(psycopg.sql.Literal(name)))
                    conn.commit()

        for label, parts in (("1 connection", [files]), ("2 connections", [files[0::2], files[1::2]])):
            seconds = timed_threads(load, parts)
            loaded = sum(count for _, count in files)
            print(f"  database only, {label}: {loaded / seconds:,.0f} lines/s")
            rows.append((f"database only (server-side COPY of the import's rows, commit per batch), {label}",
                         f"{loaded / seconds:,.0f} lines/s ({loaded:,} rows in {seconds:.1f} s)"))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id > %s", [last_id])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def run(argv):
    from django.db import connection

    parser = argparse.ArgumentParser(prog="python -m bench proxylogs")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the imported file")
    parser.add_argument("--rows", type=int, default=10_000_000, help="table size for the API latencies")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--big-gib", type=float, default=0,
                        help="also import a generated file of this many GiB in a child process (peak RSS)")
    parser.add_argument("--dashboards", action="store_true",
                        help="only time the proxy summaries and the proxy page (after topping the table up to "
                             "--rows), with the rollup tables' sizes")
    parser.add_argument("--rebuild", action="store_true",
                        help="with --dashboards: first recount the dashboard rollups from the entries, timed")
    parser.add_argument("--repeat", type=int, default=20, help="requests per path for --dashboards")
    parser.add_argument("--database-ceiling", type=int, default=0, metavar="LINES",
                        help="only time the database's share of an import of LINES lines: their rows COPYed "
                             "from server-side files, batch by batch, from one and from two connections")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        print("warning: the targets are for PostgreSQL; this is", connection.vendor)
    if args.database_ceiling:
        return database_ceiling(args.database_ceiling)
    if args.dashboards:
        started = time.perf_counter()
        total = top_up(args.rows)
        rows = [("table filled to", f"{total:,} rows ({time.perf_counter() - started:.0f} s)")]
        if args.rebuild:
            rows.append(("dashboard rollups recounted from the entries in SQL", f"{rebuild_rollups():.0f} s"))
        analyze()
        rows += rollup_sizes()
        rows.append(("load average before the requests", " ".join(f"{n:.1f}" for n in os.getloadavg())))
        for path, (p50, p95) in dashboard_latency(args.repeat).items():
            rows.append((f"GET {path}", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
        rows.append(("load average after the requests", " ".join(f"{n:.1f}" for n in os.getloadavg())))
        return rows
    rows = []
    if not args.skip_import:
        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "access.log")
            write_log(path, args.lines)
            size = os.path.getsize(path)
            before = rss_mib()
            load = " ".join(f"{n:.1f}" for n in os.getloadavg())
            result, seconds, (own_us, server_us) = import_file(path)
            goaccess, goaccess_per_second = goaccess_rate(path, args.lines)
            ratio = f"{result.imported / seconds / goaccess_per_second:.2f}x" if goaccess_per_second else "n/a"
            rows += [
                ("import file", f"{args.lines:,} lines, {size / 2**20:,.0f} MiB"),
                ("import end to end (parse, derive, COPY, checkpoint)", f"{result.imported / seconds:,.0f} lines/s"),
                ("import CPU per line: this process (parse, derive, send) / PostgreSQL backend",
                 f"{own_us:.1f} / {server_us:.1f} us" if server_us is not None else f"{own_us:.1f} us / n/a"),
                ("peak RSS before / after import", f"{before:,.0f} / {rss_mib():,.0f} MiB"),
                ("of which read, parse, derive, count alone (no database, one thread)", parse_rate(path, args.lines)),
                ("GoAccess 1.7 on the same file", goaccess),
                ("import end to end / GoAccess (target >= 0.5x)", ratio),
                ("load average before / after", f"{load} / {' '.join(f'{n:.1f}' for n in os.getloadavg())}"),
            ]
    if args.big_gib:
        rows += big_import(args.big_gib)
    started = time.perf_counter()
    total = top_up(args.rows)
    rows.append(("table filled to", f"{total:,} rows ({time.perf_counter() - started:.0f} s)"))
    analyze()
    for path, (p50, p95) in api_latency().items():
        rows.append((f"GET {path}", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
    return rows
