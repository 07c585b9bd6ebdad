"""A small hand-built access log, placed relative to the current hour, whose numbers the API tests check."""

import datetime as dt

from django.utils import timezone

from proxylogs.ingest.parse import parse_line
from proxylogs.services import WafTagger, store_records
from vpnmonitor.timeseries import floor_time

# (hours before the current hour, client, code/status, bytes, method, url, user, hierarchy, mime)
ENTRIES = [
    (0, "10.0.0.5", "TCP_MISS/200", 1000, "GET", "http://www.example.com/index.html", "-",
     "HIER_DIRECT/93.184.216.34", "text/html"),                                                        # A
    (0, "10.0.0.6", "TCP_TUNNEL/200", 5000, "CONNECT", "www.dropbox.com:443", "alice",
     "HIER_DIRECT/162.125.1.1", "-"),                                                                  # B
    (0, "10.0.0.5", "TCP_DENIED/403", 300, "GET", "http://ads.example.net/banner.js", "-", "HIER_NONE/-",
     "text/html"),                                                                                     # C
    (2, "2001:db8:1::7", "TCP_DENIED/403", 200, "CONNECT", "203.0.113.9:443", "-", "HIER_NONE/-", "text/html"),  # D
    (2, "10.0.0.7", "TCP_DENIED/407", 100, "GET", "http://www.example.com/private.pdf", "-", "HIER_NONE/-",
     "text/html"),                                                                                     # E
    (2, "10.0.0.7", "TCP_TUNNEL/200", 700, "CONNECT", "198.51.100.4:8443", "-", "HIER_DIRECT/198.51.100.4", "-"),  # F
    (5, "192.168.1.20", "TCP_MISS/404", 400, "GET", "http://files.example.co.uk/a/report.zip", "-",
     "HIER_DIRECT/192.0.2.80", "text/html"),                                                           # G
    (5, "10.0.0.5", "TCP_DENIED/403", 250, "GET", "http://[2001:db8::99]/x?id=1%27%20union%20select%201", "-",
     "HIER_NONE/-", "text/html"),                                                                      # H
    (40 * 24, "10.0.0.9", "TCP_MISS/200", 999, "GET", "http://old.example.org/", "-", "HIER_DIRECT/192.0.2.1",
     "text/html"),                                                                                     # I
]
CLIENTS = ["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.9", "2001:db8:1::7", "192.168.1.20"]


def native_line(moment, client, code_status, size, method, url, user, hierarchy, mime, elapsed=12):
    return (f"{moment.timestamp():.3f} {elapsed:6d} {client} {code_status} {size} {method} {url} {user} "
            f"{hierarchy} {mime}")


def build(now=None):
    """Store ENTRIES; returns the start of the current hour (the newest entries' timestamp)."""
    base = floor_time(now or timezone.now(), 3600)
    records = [parse_line(native_line(base - dt.timedelta(hours=hours), *rest)) for hours, *rest in ENTRIES]
    store_records(records, waf=WafTagger.enabled())
    return base
