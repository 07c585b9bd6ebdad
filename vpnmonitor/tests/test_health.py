import json

import pytest

from vpnmonitor.testing.servers import fetch, free_port, gunicorn

pytestmark = pytest.mark.django_db


def test_health_is_healthy_when_the_database_answers(api_client, settings):
    response = api_client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"] == "ok"
    assert ("redis" in body["checks"]) == bool(settings.REDIS_URL)


def test_health_is_503_naming_redis_when_redis_does_not_answer(api_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = api_client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "down"


def test_beat_schedule_rows_exist_with_expiry():
    from django_celery_beat.models import PeriodicTask

    from vpnmonitor.schedule import SCHEDULE

    for name, entry in SCHEDULE.items():
        task = PeriodicTask.objects.get(name=name)
        assert task.task == entry["task"]
        assert task.interval.every == entry["every_seconds"]
        assert task.expire_seconds == entry["expires"]


def test_an_admin_changed_interval_survives_the_next_migrate():
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from vpnmonitor.schedule import ensure_periodic_tasks

    task = PeriodicTask.objects.get(name="apply-retention")
    task.interval = IntervalSchedule.objects.create(every=7200, period=IntervalSchedule.SECONDS)
    task.save()
    assert ensure_periodic_tasks() == []
    assert PeriodicTask.objects.get(name="apply-retention").interval.every == 7200


@pytest.mark.integration
def test_a_database_that_does_not_answer_is_down_with_no_error_text_and_the_reason_is_logged(tmp_path):
    # gunicorn whose database is a PostgreSQL server that is not there: the driver's error names host and port.
    port = free_port()
    with gunicorn(tmp_path, DATABASE_URL=f"postgres://vpnmonitor-user@127.0.0.1:{port}/vpnmonitor",
                  REDIS_URL="") as base:
        for path in ("/api/v1/health", "/api/health"):
            status, _, text = fetch(f"{base}{path}")
            assert status == 503, text
            body = json.loads(text)
            assert (body["status"], body["checks"]) == ("unhealthy", {"database": "down"})
            assert str(port) not in text and "vpnmonitor-user" not in text and "127.0.0.1" not in text
    log = next(tmp_path.glob("gunicorn-*.log")).read_text()
    assert "health: the database does not answer: OperationalError" in log
    assert str(port) in log
