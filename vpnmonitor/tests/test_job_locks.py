"""A periodic job's lock cannot outlive its holder: a worker killed mid-job frees the job for the next run,
which resumes it and ends with the numbers a clean run gives."""

import datetime as dt
import os
import signal
import time

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from vpnmonitor import jobs
from vpnmonitor.models import JobLock
from vpnmonitor.testing.worker import celery_worker

LEASE_SECONDS = 6


@pytest.mark.django_db(transaction=True)
def test_it_renews_a_lease_while_its_job_runs_and_frees_it_at_the_end(settings):
    settings.JOB_LEASE_SECONDS = 2
    with jobs._lease("long job") as acquired:
        assert acquired
        first = JobLock.objects.get(name="long job").expires_at
        time.sleep(3.2)  # longer than the lease: renewed at 1 s, 2 s and 3 s
        assert JobLock.objects.get(name="long job").expires_at > first
        assert not JobLock.acquire("long job", 2, "another worker")
    assert not JobLock.objects.filter(name="long job").exists()
    assert JobLock.acquire("long job", 2, "another worker")


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_job_once_at_a_time_and_frees_it_when_the_job_ends():
    with jobs.exclusive("nightly") as acquired:
        assert acquired
        with jobs.exclusive("nightly") as again:
            assert not again
    with jobs.exclusive("nightly") as acquired:
        assert acquired


def killed_mid_run(task, lock, started, timeout=120):
    """Run task in a real worker and SIGKILL the worker once started() holds.

    Returns the kill's time; without advisory locks (SQLite), checks that the dead worker's lease ends within
    JOB_LEASE_SECONDS of the kill.
    """
    with celery_worker() as worker:
        task.delay()
        deadline = time.monotonic() + timeout
        while not started():
            assert worker.poll() is None, "the worker ended by itself"
            assert time.monotonic() < deadline, "the job never got under way"
            time.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        killed_at, killed_wall = time.monotonic(), timezone.now()
    if connection.vendor != "postgresql":
        lease = JobLock.objects.get(name=lock)
        assert (lease.expires_at - killed_wall).total_seconds() <= LEASE_SECONDS
    return killed_at


def next_run(task, killed_at):
    """Send task to a fresh worker until a run is not skipped; returns (skipped runs, seconds after the kill the
    accepted run was sent, its result)."""
    skipped = 0
    with celery_worker():
        while True:
            sent_at = time.monotonic()
            result = task.delay().get(timeout=180)
            if "skipped" not in result:
                return skipped, sent_at - killed_at, result
            skipped += 1
            assert time.monotonic() - killed_at < 3 * LEASE_SECONDS, f"still skipped: {result}"
            time.sleep(0.2)


def assert_started_within_the_lease(skipped, waited):
    if connection.vendor == "postgresql":
        # The server dropped the dead worker's connection and its advisory lock with it: nothing waits.
        assert skipped == 0
    else:
        # Sent at the latest one skipped round trip (to a worker just starting) after the lease lapsed.
        assert waited <= LEASE_SECONDS + 3


@pytest.fixture
def short_lease(monkeypatch):
    monkeypatch.setenv("JOB_LEASE_SECONDS", str(LEASE_SECONDS))


def proxy_numbers():
    from proxylogs.models import ProxyLogEntry, ProxyLogHour

    entries = ProxyLogEntry.objects.aggregate(rows=Count("id"), bytes=Sum("bytes"), clients=Count("client_ip",
                                                                                                     distinct=True))
    per_code = dict(ProxyLogEntry.objects.values_list("result_code").annotate(n=Count("id")).order_by())
    hours = list(ProxyLogHour.objects.order_by("hour").values_list("hour", "total", "blocked", "ip_blocked", "bytes"))
    return entries, per_code, hours


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_squid_log_import_killed_mid_run_resumes_in_the_next_run_within_the_lease_and_matches_a_clean_run(
        tmp_path, short_lease):
    from bench.proxylogs import write_log
    from proxylogs import services
    from proxylogs.models import LogSource
    from proxylogs.tasks import tail_proxy_logs

    lines = 300_000
    path = tmp_path / "access.log"
    write_log(path, lines)
    size = path.stat().st_size
    source = LogSource.objects.create(name="main", path=str(path))

    def under_way():
        offset = (LogSource.objects.get(pk=source.pk).checkpoint or {}).get("offset", 0)
        return 0 < offset < size / 2

    killed_at = killed_mid_run(tail_proxy_logs, "tail_proxy_logs", under_way)
    cut = LogSource.objects.get(pk=source.pk)
    assert 0 < cut.lines_imported < lines

    skipped, waited, result = next_run(tail_proxy_logs, killed_at)
    assert_started_within_the_lease(skipped, waited)
    assert result["main"] == {"imported": lines - cut.lines_imported, "rejected": 0}
    resumed = LogSource.objects.get(pk=source.pk)
    assert (resumed.lines_imported, resumed.lines_rejected, resumed.checkpoint["offset"]) == (lines, 0, size)
    after_kill = proxy_numbers()
    assert after_kill[0]["rows"] == lines

    services.clear_logs(None)
    LogSource.objects.filter(pk=source.pk).update(enabled=False)
    clean = LogSource.objects.create(name="clean", path=str(path))
    assert services.import_source(clean).imported == lines
    assert proxy_numbers() == after_kill


def fill_usage_history(clients=40, days=45, step_minutes=5):
    """Raw samples of `clients` clients every step_minutes over `days` days ending an hour ago (in SQL: fast)."""
    from monitoring.models import VpnClient, VpnServer

    server = VpnServer.objects.create(name="vpn-load", status_file="/nonexistent")
    VpnClient.objects.bulk_create(VpnClient(server=server, common_name=f"client-{n}") for n in range(clients))
    count = days * 24 * 60 // step_minutes
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=days, hours=1)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO usage_history (server_id, client_id, timestamp, bytes_received, bytes_sent, "
                "interval_seconds) SELECT c.server_id, c.id, %s + n * make_interval(mins => %s), "
                "(n * 7919 + c.id * 104729) %% 1000003, (n * 31 + c.id) %% 50021, %s "
                "FROM monitoring_vpnclient c CROSS JOIN generate_series(0, %s - 1) n",
                [start, step_minutes, step_minutes * 60, count])
        else:
            cursor.execute(
                "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < %s - 1) "
                "INSERT INTO usage_history (server_id, client_id, timestamp, bytes_received, bytes_sent, "
                "interval_seconds) SELECT c.server_id, c.id, "
                "strftime('%%Y-%%m-%%d %%H:%%M:%%S', %s, '+' || (n * %s) || ' seconds'), "
                "(n * 7919 + c.id * 104729) %% 1000003, (n * 31 + c.id) %% 50021, %s "
                "FROM monitoring_vpnclient c CROSS JOIN seq",
                [count, start.strftime("%Y-%m-%d %H:%M:%S"), step_minutes * 60, step_minutes * 60])
    return clients * count


def rollup_numbers():
    from monitoring.models import Stats6h, StatsDaily, StatsHourly

    return {
        model.__name__: list(model.objects.order_by("client_id", "bucket").values_list(
            "client_id", "server_id", "bucket", "bytes_received", "bytes_sent", "samples"))
        for model in (StatsHourly, Stats6h, StatsDaily)
    }


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_rollup_killed_mid_run_runs_again_within_the_lease_and_matches_a_clean_run(short_lease):
    from monitoring import services
    from monitoring.models import RollupState, Stats6h, StatsDaily, StatsHourly, UsageSample
    from monitoring.tasks import rollup_usage

    samples = fill_usage_history()
    assert UsageSample.objects.count() == samples

    def under_way():
        return StatsHourly.objects.exists() and not RollupState.objects.filter(table="stats_hourly").exists()

    killed_at = killed_mid_run(rollup_usage, "rollup-usage", under_way)
    assert not RollupState.objects.exists()  # cut before the hourly rollup finished

    skipped, waited, result = next_run(rollup_usage, killed_at)
    assert_started_within_the_lease(skipped, waited)
    assert result["stats_hourly"] > 0
    after_kill = rollup_numbers()
    hourly = StatsHourly.objects.aggregate(samples=Sum("samples"), received=Sum("bytes_received"))
    raw = UsageSample.objects.aggregate(received=Sum("bytes_received"))
    assert (hourly["samples"], hourly["received"]) == (samples, raw["received"])

    for model in (StatsHourly, Stats6h, StatsDaily, RollupState):
        model.objects.all().delete()
    services.rollup_all()
    assert rollup_numbers() == after_kill
