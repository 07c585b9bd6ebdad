"""The hourly rollup (ProxyLogHour) is kept by the services alone: after any mix of imports, prunes, deletes and
clears it holds what the stored entries hold, and no database trigger is left to count them."""

import datetime as dt
import random

import pytest
from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse

from proxylogs import services
from proxylogs.ingest.parse import parse_squid
from proxylogs.models import ProxyLogEntry, ProxyLogHour
from proxylogs.rollups import HOURLY, count_batch
from proxylogs.tests.logs_dataset import native_line
from vpnmonitor import partitions, retention, rollups

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
# (code/status, method, url, hierarchy): allowed, denied, denied by proxy authentication (not blocked), and
# CONNECTs to a name and to raw IP addresses, allowed and denied.
REQUESTS = [
    ("TCP_MISS/200", "GET", "http://www.example.com/a.js", "HIER_DIRECT/192.0.2.80"),
    ("TCP_DENIED/403", "GET", "http://ads.example.net/banner.js", "HIER_NONE/-"),
    ("TCP_DENIED/407", "GET", "http://intranet.example/", "HIER_NONE/-"),
    ("TCP_TUNNEL/200", "CONNECT", "www.dropbox.com:443", "HIER_DIRECT/162.125.1.1"),
    ("TCP_TUNNEL/200", "CONNECT", "198.51.100.4:8443", "HIER_DIRECT/198.51.100.4"),
    ("TCP_DENIED/403", "CONNECT", "203.0.113.9:443", "HIER_NONE/-"),
    ("TCP_DENIED/403", "CONNECT", "[2001:db8::dead]:443", "HIER_NONE/-"),
]


def lines(count, first, span, seed):
    """count native log lines at random times in [first, first + span), in time order but for every 25th line,
    which is moved to the start of its hour."""
    pick = random.Random(seed)
    moments = sorted(first + dt.timedelta(milliseconds=pick.randrange(int(span.total_seconds() * 1000)))
                     for _ in range(count))
    moments[::25] = [rollups.floor_time(moment, 3600) for moment in moments[::25]]
    return [native_line(moment, f"10.0.{pick.randrange(4)}.{pick.randrange(1, 250)}", code,
                        pick.choice([0, 1, 350, 8_000, 2_000_000]), method, url, "-", hierarchy, "text/html")
            for moment, (code, method, url, hierarchy) in ((moment, pick.choice(REQUESTS)) for moment in moments)]


def stored():
    return {row.hour: (row.total, row.blocked, row.ip_blocked, row.bytes) for row in ProxyLogHour.objects.all()}


def grouped():
    """The entries counted per UTC hour by a plain GROUP BY."""
    rows = (ProxyLogEntry.objects.annotate(h=TruncHour("timestamp", tzinfo=dt.UTC)).values("h").order_by()
            .annotate(n=Count("id"), n_blocked=Count("id", filter=Q(blocked=True)),
                      n_ip=Count("id", filter=Q(blocked=True, destination_is_ip=True)), n_bytes=Sum("bytes")))
    return {row["h"]: (row["n"], row["n_blocked"], row["n_ip"], row["n_bytes"]) for row in rows}


def assert_exact():
    hours = stored()
    assert hours == grouped()
    rollups.rebuild(ProxyLogEntry)
    assert stored() == hours
    return hours


def test_the_rollup_equals_the_entries_after_imports_prunes_deletes_and_a_clear(tmp_path):
    log = tmp_path / "access.log"
    # Forty days up to NOW, imported in small batches (the native fast path), one checkpoint each.
    log.write_text("\n".join(lines(1500, NOW - dt.timedelta(days=40), dt.timedelta(days=40), seed=1)) + "\n")
    result = services.import_source(services.source_for_path(log), batch_bytes=8192)
    assert (result.imported, result.rejected) == (1500, 0)
    # Late lines of the same hours, out of time order, stored as parsed records and as rows.
    late = [parse_squid(line) for line in lines(400, NOW - dt.timedelta(days=35), dt.timedelta(days=10), seed=2)]
    random.Random(3).shuffle(late)
    assert services.store_records(late[:250]) == 250
    assert services.store_rows([services.entry_row(record) for record in late[250:]]) == 150
    hours = assert_exact()
    assert sum(total for total, *_ in hours.values()) == ProxyLogEntry.objects.filter(pk__gt=0).count() == 1900
    assert sum(ip_blocked for _, _, ip_blocked, _ in hours.values()) > 0

    cutoff = NOW - dt.timedelta(days=30)
    if partitions.partitioned(ProxyLogEntry):
        cutoff = rollups.floor_time(cutoff, rollups.DAY)  # whole days are dropped, the cutoff's is kept
    older = ProxyLogEntry.objects.filter(timestamp__lt=cutoff).count()
    assert retention.prune("proxy_logs", now=NOW, batch_size=97) == older > 0
    assert min(stored()) >= rollups.floor_time(cutoff, 3600)
    denied_ips = ProxyLogEntry.objects.filter(blocked=True, destination_is_ip=True)
    denied = denied_ips.count()
    assert services.delete_entries(denied_ips) == denied > 0
    hours = assert_exact()
    assert sum(total for total, *_ in hours.values()) == 1900 - older - denied
    assert sum(ip_blocked for _, _, ip_blocked, _ in hours.values()) == 0

    assert services.clear_logs(None) == 1900 - older - denied
    assert (ProxyLogEntry.objects.filter(pk__gt=0).count(), ProxyLogHour.objects.count()) == (0, 0)


def test_a_batch_is_counted_as_the_core_counts_rows_in_memory():
    rows = [services.entry_row(parse_squid(line))
            for line in lines(600, NOW - dt.timedelta(days=2), dt.timedelta(days=2), seed=4)]
    random.Random(5).shuffle(rows)
    counts = count_batch(rows, services.COLUMNS)
    assert counts == rollups.count_rows(HOURLY, [dict(zip(services.COLUMNS, row, strict=True)) for row in rows])
    assert sum(total for total, *_ in counts.values()) == 600


def test_no_trigger_counts_entries_any_more():
    table = ProxyLogEntry._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [table])
            assert cursor.fetchall() == []
            cursor.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'proxylogs_rollup_%%'")
            assert cursor.fetchall() == []
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            assert cursor.fetchall() == []
        # A row written behind the services' back is left out of the rollup (on PostgreSQL, in its day's partition).
        partitions.ensure(ProxyLogEntry, {partitions.day_number(NOW)})
        cursor.execute(f"INSERT INTO {table} (timestamp, client_network, method, url, http_status, result_code, bytes,"
                       " hierarchy, destination_is_ip, blocked) VALUES (%s, '10.0.0.0', 'GET', 'http://a.example/', "
                       "200, 'TCP_MISS', 10, 'HIER_DIRECT', false, false)",
                       [connection.ops.adapt_datetimefield_value(NOW)])
    assert ProxyLogEntry.objects.filter(pk__gt=0).count() == 1
    assert not ProxyLogHour.objects.exists()


def test_the_admin_shows_entries_and_deletes_none(admin_client):
    line = native_line(NOW, "10.0.0.5", "TCP_DENIED/403", 300, "GET", "http://ads.example.net/", "-", "HIER_NONE/-",
                       "text/html")
    services.store_records([parse_squid(line)])
    entry = ProxyLogEntry.objects.get()
    delete = reverse("admin:proxylogs_proxylogentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:proxylogs_proxylogentry_changelist")
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert ProxyLogEntry.objects.filter(pk=entry.pk).exists()
    assert stored() == {rollups.floor_time(NOW, 3600): (1, 1, 0, 300)}
