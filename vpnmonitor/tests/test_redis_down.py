"""Redis down: reads are served (the cache fails open, counted and logged once a minute), a write that needs the
broker is a 503 in its family's shape, health is a 503 naming Redis, and everything recovers when Redis returns."""

import base64
import json
import logging
import time

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from vpnmonitor import cache as cache_module
from vpnmonitor.cache import FailOpenRedisCache
from vpnmonitor.models import AuditEvent, ServiceFailureCounter
from vpnmonitor.testing import worker
from vpnmonitor.testing.servers import RedisServer, fetch, free_port, gunicorn, signed_in_opener
from vpnmonitor.testing.worker import celery_worker
from vpnmonitor.tests.test_logins import PATHS, users  # noqa: F401 - users is a fixture

TOKEN = "a-metrics-token-for-the-redis-test"


@pytest.fixture(autouse=True)
def fresh_failure_count(monkeypatch):
    """Each test starts with no failures pending in this process."""
    monkeypatch.setattr(cache_module, "failures", cache_module._FailureCount())


@pytest.mark.django_db
def test_the_cache_serves_misses_while_redis_is_unreachable_and_logs_once_a_minute(caplog, monkeypatch):
    monkeypatch.setattr(cache_module, "FLUSH_INTERVAL", 0.5)
    cache = FailOpenRedisCache(f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {"socket_connect_timeout": 1}})
    with caplog.at_level(logging.WARNING, logger="vpnmonitor.cache"):
        assert cache.get("throttle:default:user:1", []) == []
        cache.set("throttle:default:user:1", [1.0], 60)
        assert cache.add("key", 1) is False
        assert cache.get_many(["a", "b"]) == {}
        cache.delete("key")
        with pytest.raises(ValueError):
            cache.incr("key")
        with pytest.raises(ValueError):
            cache.decr("key")

    # The first failure is written at once; the other six wait for the next flush, at most once a minute.
    assert ServiceFailureCounter.objects.get(service="cache").failures == 1
    assert cache_module.failures.pending == 6
    time.sleep(0.6)
    assert cache.has_key("key") is False
    assert ServiceFailureCounter.objects.get(service="cache").failures == 8
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert "Redis cache unreachable" in messages[0]


@pytest.mark.django_db
def test_after_a_failure_the_cache_leaves_redis_alone_for_a_few_seconds_then_uses_it_again(
        tmp_path, monkeypatch):
    import redis as redis_py

    monkeypatch.setattr(cache_module, "BREAKER_SECONDS", 1.0)
    server = RedisServer(tmp_path).start()
    try:
        cache = FailOpenRedisCache(server.url, {"OPTIONS": {"socket_connect_timeout": 1}})
        cache.set("before", 1)
        assert cache.get("before") == 1
        server.stop()
        assert cache.get("before") is None  # fails, and opens the breaker
        server.start()
        direct = redis_py.Redis.from_url(server.url)
        cache.set("during", 2)  # skipped: Redis is not asked
        assert cache.get("during") is None
        assert direct.keys("*") == []
        time.sleep(1.1)
        cache.set("after", 3)
        assert cache.get("after") == 3
        assert len(direct.keys("*")) == 1
    finally:
        server.stop()
    assert ServiceFailureCounter.objects.get(service="cache").failures == 1
    assert cache_module.failures.pending == 2


@pytest.mark.django_db
@pytest.mark.urls("vpnmonitor.tests.urls")
@pytest.mark.parametrize(("family", "shape"), [
    ("monitor", {"success": False, "error": "The task broker is unavailable; try again later."}),
    ("sessions", {"status": 503, "error": "Service Unavailable",
                  "message": "The task broker is unavailable; try again later."}),
    ("flowreports", {"error": "The task broker is unavailable; try again later."}),
    ("proxylogs", {"status": "error", "message": "The task broker is unavailable; try again later."}),
])
def test_a_write_that_needs_the_broker_is_a_503_in_its_family_shape(operator_client, settings, family, shape):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = operator_client.post(f"/t/broker/{family}", {}, format="json")
    assert response.status_code == 503
    assert response.json() == shape


@pytest.mark.django_db
@pytest.mark.urls("vpnmonitor.tests.urls")
def test_the_analytics_family_names_path_and_time_in_its_503(operator_client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = operator_client.post("/t/broker/proxyanalytics", {}, format="json")
    assert response.status_code == 503
    body = response.json()
    assert (body["message"], body["path"]) == ("The task broker is unavailable; try again later.",
                                              "/t/broker/proxyanalytics")


def metric_values(text):
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_with_redis_stopped_gunicorn_serves_reads_and_pages_and_ingestion_catches_up_when_redis_returns(
        tmp_path, django_user_model, monkeypatch):
    from django.contrib.auth.models import Group

    from bench.proxylogs import write_log
    from proxylogs.models import LogSource, ProxyLogEntry

    django_user_model.objects.create_user("watcher", password="pw-watcher").groups.add(
        Group.objects.get(name="viewers"))
    log = tmp_path / "access.log"
    write_log(log, 200)
    LogSource.objects.create(name="squid-main", path=str(log))
    basic = {"Authorization": "Basic " + base64.b64encode(b"watcher:pw-watcher").decode()}

    redis = RedisServer(tmp_path).start()
    monkeypatch.setenv("REDIS_URL", redis.url)  # the worker's broker
    broker = Celery("redis-down-test", broker=redis.url, backend=redis.url, set_as_current=False)
    try:
        with gunicorn(tmp_path, DATABASE_URL=worker.test_database_url(), REDIS_URL=redis.url, METRICS_TOKEN=TOKEN) as base, \
                celery_worker():
            first = broker.send_task("proxylogs.tasks.tail_proxy_logs").get(timeout=120)
            assert first["squid-main"] == {"imported": 200, "rejected": 0}
            assert fetch(f"{base}/api/v1/health")[0] == 200

            redis.stop()
            status, _, body = fetch(f"{base}/api/logs?limit=5", basic)
            assert status == 200, body
            assert json.loads(body)["status"] == "success"
            status, headers, body = fetch(f"{base}/api/v1/health")
            assert (status, headers["Content-Type"]) == (503, "application/json")
            health = json.loads(body)
            assert (health["status"], health["checks"]) == ("unhealthy", {"database": "ok", "redis": "down"})
            opener = signed_in_opener(base, "watcher", "pw-watcher")
            status, _, page = fetch(f"{base}/dashboard/proxy/", opener=opener)
            assert status == 200
            assert "data-bars" in page
            status, _, text = fetch(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            values = metric_values(text)
            assert values[("vpnmonitor_celery_broker_up", ())] == 0
            # The throttle's read and write above: a process writes its first failure at once, later ones with
            # its next flush (at most once a minute).
            assert values[("vpnmonitor_cache_failures_total", ())] >= 1

            # Lines written while Redis is down are imported by the first run after it returns.
            more = tmp_path / "more.log"
            write_log(more, 150, seed=8)
            with open(log, "a") as out:
                out.write(more.read_text())
            redis.start()
            second = broker.send_task("proxylogs.tasks.tail_proxy_logs").get(timeout=180)
            assert second["squid-main"] == {"imported": 150, "rejected": 0}
            status, _, body = fetch(f"{base}/api/v1/health")
            assert (status, json.loads(body)["checks"]) == (200, {"database": "ok", "redis": "ok"})
            status, _, text = fetch(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"})
            assert metric_values(text)[("vpnmonitor_celery_broker_up", ())] == 1
    finally:
        redis.stop()
    assert ProxyLogEntry.objects.count() == 350


@pytest.fixture
def stopped_redis_cache(tmp_path, settings):
    """The default cache on a private redis-server that has been stopped (the shared Redis is left alone)."""
    redis = RedisServer(tmp_path).start()
    redis.stop()
    settings.CACHES = {"default": {"BACKEND": "vpnmonitor.cache.FailOpenRedisCache", "LOCATION": redis.url,
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}
    settings.PASSWORD_HASHERS = ["vpnmonitor.tests.test_logins.CountingHasher"]
    return redis


@pytest.mark.django_db
@pytest.mark.usefixtures("stopped_redis_cache", "users")
@pytest.mark.parametrize("path", ["http-basic", "jwt", "admin-page"])
def test_with_redis_stopped_a_wrong_password_is_refused_as_usual_and_the_right_one_signs_in(path):
    sign_in, name, secret, good, bad, _ = PATHS[path]
    for _ in range(2):
        response = sign_in(name, "wrong", "203.0.113.66")
        assert response.status_code == bad
    if path == "admin-page":
        assert 'name="password"' in response.content.decode()
    assert sign_in(name, secret, "203.0.113.66").status_code == good
    assert AuditEvent.objects.filter(action="auth.login_failed", target=name).count() == 2
