"""Demo data of proxylogs: a realistic day-by-day Squid access log, a source, a security profile."""

import datetime as dt
import random

from proxylogs.ingest.parse import LogRecord, split_destination
from proxylogs.models import LogImport, LogSource, SecurityProfile
from proxylogs.services import WafTagger, store_records

HOSTS = [
    ("www.google.com", 0.14), ("fonts.gstatic.com", 0.06), ("github.com", 0.06), ("api.github.com", 0.04),
    ("www.bbc.co.uk", 0.05), ("login.microsoftonline.com", 0.06), ("outlook.office365.com", 0.06),
    ("cdn.jsdelivr.net", 0.04), ("www.dropbox.com", 0.02), ("wetransfer.com", 0.01), ("pastebin.com", 0.005),
    ("web.telegram.org", 0.01), ("deb.debian.org", 0.03), ("security.debian.org", 0.01), ("pypi.org", 0.03),
    ("files.pythonhosted.org", 0.03), ("www.wikipedia.org", 0.04), ("news.ycombinator.com", 0.02),
    ("ads.tracker.example", 0.03), ("malware.bad.example", 0.01), ("www.youtube.com", 0.05),
    ("i.ytimg.com", 0.04), ("teamviewer.com", 0.005), ("mega.nz", 0.005),
]
BLOCKED_HOSTS = {"ads.tracker.example", "malware.bad.example"}
RAW_IPS = ["203.0.113.7", "198.51.100.23", "2001:db8:beef::10"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "curl/8.5.0", "Debian APT-HTTP/1.3 (2.6.1)", "okhttp/4.12.0", "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
PATHS = ["/", "/index.html", "/static/app.js", "/styles/site.css", "/img/logo.png", "/downloads/setup.exe",
         "/files/report.pdf", "/archive.zip", "/api/v1/items?page=2", "/search?q=1%27%20OR%201=1",
         "/../../etc/passwd", "/.env"]
CLIENTS = [f"10.8.0.{n}" for n in range(2, 40)] + ["192.168.1.10", "192.168.1.11", "2001:db8:10::5"]


def has_data():
    return LogSource.objects.filter(name="demo").exists()


def _records(now, count, rng):
    hosts, weights = zip(*HOSTS, strict=True)
    start = now - dt.timedelta(days=2)
    span = (now - start).total_seconds()
    for _ in range(count):
        moment = start + dt.timedelta(seconds=rng.random() * span)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        client = rng.choice(CLIENTS)
        agent = rng.choice(AGENTS) if rng.random() < 0.8 else None
        if rng.random() < 0.03:
            target = rng.choice(RAW_IPS)
            target = f"[{target}]" if ":" in target else target
            blocked = rng.random() < 0.7
            url = f"{target}:443"
            yield _record(rng, moment, client, "CONNECT", url, 403 if blocked else 200,
                          "TCP_DENIED" if blocked else "TCP_TUNNEL", agent)
            continue
        host = rng.choices(hosts, weights)[0]
        if rng.random() < 0.55:
            blocked = host in BLOCKED_HOSTS
            yield _record(rng, moment, client, "CONNECT", f"{host}:443", 403 if blocked else 200,
                          "TCP_DENIED" if blocked else "TCP_TUNNEL", agent)
            continue
        path = rng.choice(PATHS)
        status, code = rng.choices([(200, "TCP_MISS"), (304, "TCP_REFRESH_UNMODIFIED"), (404, "TCP_MISS"),
                                    (407, "TCP_DENIED"), (200, "TCP_HIT")], [70, 8, 6, 4, 12])[0]
        if host in BLOCKED_HOSTS:
            status, code = 403, "TCP_DENIED"
        method = rng.choice(["GET"] * 9 + ["POST"])
        yield _record(rng, moment, client, method, f"http://{host}{path}", status, code, agent)


def _record(rng, moment, client, method, url, status, code, agent):
    if method == "CONNECT":
        destination, host, port, is_ip = split_destination(url, 443)
    else:
        destination, host, port, is_ip = split_destination(url.split("/")[2], 80)
    size = 0 if status in (304, 407) else rng.randint(300, 2_000_000)
    return LogRecord(
        moment, rng.randint(0, 900), client, code, status, size, method, url, destination, host, port, is_ip,
        None, "HIER_NONE" if code == "TCP_DENIED" else "HIER_DIRECT", None,
        None if method == "CONNECT" else "text/html", agent, None,
    )


def seed(*, now, options):
    count = int(options.get("log_lines") or 20000)
    rng = random.Random(options.get("seed", 42))
    source = LogSource.objects.create(name="demo", path="/var/log/squid/access.log", enabled=False)
    waf = WafTagger.enabled()
    stored, batch = 0, []
    for record in _records(now, count, rng):
        batch.append(record)
        if len(batch) == 5000:
            stored += store_records(batch, source_id=source.pk, waf=waf)
            batch = []
    stored += store_records(batch, source_id=source.pk, waf=waf)
    LogSource.objects.filter(pk=source.pk).update(lines_imported=stored, last_import_at=now)
    LogImport.objects.create(source=source, path=source.path, format=source.format, started_at=now,
                             finished_at=now, lines_imported=stored)
    profile = SecurityProfile.current()
    profile.domain_blacklist = profile.direct_ip_blocking = profile.default_password_changed = True
    profile.save()
    return f"{stored} proxy log entries"

