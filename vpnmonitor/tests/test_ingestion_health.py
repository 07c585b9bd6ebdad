"""Ingestion health: stale servers, lagging log sources, silent collectors — in the selector, health check and admin."""

import datetime as dt
import os
import time

import pytest
from django.utils import timezone

from flowreports.models import CollectorStatus
from monitoring.models import VpnServer
from proxylogs.models import LogSource
from vpnmonitor.ingestion_health import health_details, ingestion_health, unread_bytes

pytestmark = pytest.mark.django_db


def ago(now, **delta):
    return now - dt.timedelta(**delta)


def server(name, now, *, success_ago=None, created_ago=None, error=""):
    row = VpnServer.objects.create(
        name=name, status_file=f"/run/openvpn/{name}.status", last_error=error,
        last_success_at=None if success_ago is None else ago(now, seconds=success_ago),
    )
    if created_ago is not None:
        VpnServer.objects.filter(pk=row.pk).update(created_at=ago(now, seconds=created_ago))
    return row


def checkpoint_of(path, offset):
    stat = os.stat(path)
    return {"device": stat.st_dev, "inode": stat.st_ino, "offset": offset, "head": "", "line": 0}


def log_source(name, path, now, *, offset, imported_ago, error=""):
    return LogSource.objects.create(
        name=name, path=str(path), checkpoint=checkpoint_of(path, offset) if offset is not None else {},
        last_import_at=None if imported_ago is None else ago(now, seconds=imported_ago), last_error=error,
    )


def by_name(rows):
    return {row.name: row for row in rows}


# ---- servers ----


def test_a_server_whose_last_good_poll_is_too_old_is_stale(settings):
    settings.STALE_SERVER_SECONDS = 60
    now = timezone.now()
    server("fresh", now, success_ago=20, created_ago=86400)
    server("old", now, success_ago=61, created_ago=86400)
    server("new", now, created_ago=10)  # added a moment ago, not polled yet
    server("never", now, created_ago=3600)  # never polled successfully in an hour
    VpnServer.objects.create(name="off", enabled=False)

    servers = by_name(ingestion_health(now).servers)

    assert {name: s.stale for name, s in servers.items()} == {
        "fresh": False, "old": True, "new": False, "never": True,
    }
    assert servers["old"].seconds_since_success == pytest.approx(61)
    assert servers["never"].seconds_since_success is None


def test_the_stale_threshold_follows_a_longer_poll_interval_set_in_admin(settings):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    settings.STALE_SERVER_SECONDS = 60
    task = PeriodicTask.objects.get(name="poll-openvpn")
    task.interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    task.save()
    now = timezone.now()
    server("slow", now, success_ago=600, created_ago=86400)
    server("dead", now, success_ago=901, created_ago=86400)

    report = ingestion_health(now)

    assert health_details(report)["openvpn_servers"]["stale_after_seconds"] == 900  # three missed polls of five minutes
    assert {s.name: s.stale for s in report.servers} == {"dead": True, "slow": False}


def test_a_failed_last_poll_is_failing_but_not_yet_stale():
    now = timezone.now()
    server("flaky", now, success_ago=15, created_ago=86400, error="TimeoutError: timed out")

    (flaky,) = ingestion_health(now).servers

    assert (flaky.failing, flaky.stale, flaky.up) == (True, False, False)


# ---- log sources ----


def test_a_source_with_unread_bytes_and_an_old_import_is_lagging(tmp_path, settings):
    settings.LOG_SOURCE_LAG_SECONDS = 120
    now = timezone.now()
    for name in ("behind", "busy", "idle"):
        (tmp_path / name).write_bytes(b"0123456789" * 10)
    log_source("behind", tmp_path / "behind", now, offset=30, imported_ago=600)  # tail stopped, file grew
    log_source("busy", tmp_path / "busy", now, offset=30, imported_ago=10)  # read 10 s ago, more came since
    log_source("idle", tmp_path / "idle", now, offset=100, imported_ago=600)  # nothing new to read

    sources = by_name(ingestion_health(now).log_sources)

    assert {name: (s.unread_bytes, s.lagging) for name, s in sources.items()} == {
        "behind": (70, True), "busy": (70, False), "idle": (0, False),
    }
    assert sources["behind"].seconds_since_import == pytest.approx(600)


def test_a_rotated_or_truncated_file_is_unread_from_its_start(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * 50)
    mark = checkpoint_of(log, 50)
    assert unread_bytes(str(log), mark) == 0

    log.write_bytes(b"y" * 20)  # truncated in place and written again
    assert unread_bytes(str(log), mark) == 20

    log.rename(tmp_path / "access.log.1")
    log.write_bytes(b"z" * 7)  # a new file under the old name
    assert unread_bytes(str(log), mark) == 7
    assert unread_bytes(str(log), {}) == 7  # never read


def test_a_file_this_process_cannot_see_has_unknown_lag_and_lags_only_by_time(tmp_path, settings):
    settings.LOG_SOURCE_LAG_SECONDS = 120
    now = timezone.now()
    LogSource.objects.create(name="remote", path=str(tmp_path / "on-another-host.log"),
                             last_import_at=ago(now, seconds=600), last_error="FileNotFoundError: ...")

    (remote,) = ingestion_health(now).log_sources

    assert (remote.unread_bytes, remote.lagging, remote.failing) == (None, True, True)


# ---- flow collectors ----


def test_a_collector_that_stopped_reporting_without_stopping_cleanly_is_stale(settings):
    settings.FLOW_COLLECTOR_STALE_SECONDS = 60
    now = timezone.now()
    common = {"pid": 1, "started_at": ago(now, hours=1)}
    CollectorStatus.objects.create(hostname="a", listen="0.0.0.0:2055", updated_at=ago(now, seconds=5), **common)
    CollectorStatus.objects.create(hostname="b", listen="0.0.0.0:2055", updated_at=ago(now, seconds=300), **common)
    CollectorStatus.objects.create(hostname="c", listen="0.0.0.0:2055", updated_at=ago(now, seconds=300),
                                   stopped_at=ago(now, seconds=300), **common)

    collectors = by_name(ingestion_health(now).collectors)

    assert {name: (c.running, c.stale) for name, c in collectors.items()} == {
        "a/0.0.0.0:2055": (True, False), "b/0.0.0.0:2055": (False, True), "c/0.0.0.0:2055": (False, False),
    }


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_collect_flows_saves_its_counters_while_running_and_when_stopped():
    from flowreports.tests.test_collect_flows import EXPORT_TIME, RunningCommand, ipfix_packet

    start_ms = EXPORT_TIME * 1000
    record = ("10.8.0.6", "192.0.2.10", 40000, 443, 6, 5, 900, start_ms, start_ms + 1000, 64)
    with RunningCommand(3, status_interval=0.2) as command:
        command.send(ipfix_packet([record, record]), b"\x00\x0agarbage")
        deadline = timezone.now() + dt.timedelta(seconds=10)
        while not CollectorStatus.objects.filter(flows_stored=2, stopped_at__isnull=True).exists():
            assert timezone.now() < deadline, list(CollectorStatus.objects.values())
            time.sleep(0.05)
    (row,) = CollectorStatus.objects.all()

    assert row.listen == f"127.0.0.1:{command.port}"
    assert row.pid == os.getpid()
    assert (row.packets_received, row.flows_received, row.flows_stored, row.flows_dropped) == (2, 2, 2, 0)
    assert (row.malformed_packets, row.packets_lost) == (1, 0)
    assert row.stopped_at is not None  # saved once more on the way out
    assert not ingestion_health().collectors[0].stale


# ---- /api/v1/health ----


def test_health_stays_200_and_names_a_stale_server_and_a_lagging_source(api_client, tmp_path, settings):
    settings.STALE_SERVER_SECONDS = 60
    settings.LOG_SOURCE_LAG_SECONDS = 120
    now = timezone.now()
    server("vpn-east", now, success_ago=5, created_ago=86400)
    server("vpn-west", now, success_ago=3600, created_ago=86400, error="ConnectionRefusedError: 10.1.2.3:7505")
    log = tmp_path / "secret-path-access.log"
    log.write_bytes(b"x" * 100)
    log_source("squid-main", log, now, offset=10, imported_ago=900)
    CollectorStatus.objects.create(hostname="flows-1", listen="203.0.113.5:2055", pid=1, started_at=ago(now, hours=1),
                                   updated_at=ago(now, seconds=2))

    response = api_client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["details"] == {
        "ingestion": "degraded",
        "openvpn_servers": {"enabled": 2, "stale": ["vpn-west"], "failing": ["vpn-west"], "stale_after_seconds": 60},
        "proxy_log_sources": {"enabled": 1, "lagging": ["squid-main"], "failing": [], "lag_after_seconds": 120},
        "flow_collectors": {"running": 1, "stale": 0},
    }
    # No paths, addresses or error texts for anonymous callers.
    text = response.content.decode()
    for secret in ("secret-path-access", "10.1.2.3", "203.0.113.5", "ConnectionRefused"):
        assert secret not in text


def test_health_details_are_ok_when_everything_is_fresh(api_client):
    server("vpn-east", timezone.now(), success_ago=1, created_ago=86400)

    details = api_client.get("/api/v1/health").json()["details"]

    assert details["ingestion"] == "ok"
    assert details["openvpn_servers"]["stale"] == []


# ---- admin ----


def test_the_admin_page_shows_ingestion_health_to_staff(client, django_user_model, tmp_path):
    now = timezone.now()
    server("vpn-west", now, success_ago=3600, created_ago=86400)
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * 100)
    log_source("squid-main", log, now, offset=10, imported_ago=900)
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)

    response = client.get("/admin/vpnmonitor/ingestionhealth/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Ingestion: <strong>degraded</strong>" in page
    assert "<td>vpn-west</td>" in page and ">stale<" in page
    assert "<td>squid-main</td>" in page and "<td>90</td>" in page and ">lagging<" in page
    assert "/admin/vpnmonitor/ingestionhealth/" in client.get("/admin/").content.decode()


def test_the_admin_page_is_for_staff_only(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("plain", password="pw"))

    response = client.get("/admin/vpnmonitor/ingestionhealth/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_collectors_kernel_drops_are_saved_and_shown(db):
    from flowreports.services import COLLECTOR_COUNTERS, record_collector_status

    stats = dict.fromkeys(COLLECTOR_COUNTERS, 0) | {"packets_received": 900, "packets_lost": 123}
    record_collector_status(hostname="c1", listen="0.0.0.0:2055", pid=1, started_at=timezone.now(), stats=stats)
    assert CollectorStatus.objects.get().packets_lost == 123
    assert ingestion_health().collectors[0].counters["packets_lost"] == 123
