"""The Redis cache, failing open: when Redis cannot be reached a read is a miss and a write is skipped.

Throttling, the privacy-settings cache and everything else that uses the Django cache keep serving while Redis
is down (throttling then lets every request through). Each failed operation is counted in the database
(`vpnmonitor_cache_failures_total` in /metrics) and logged at most once a minute per process. redis-py opens a
new connection for the next operation, so nothing needs a restart when Redis is back.
"""

import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
LOG_INTERVAL = 60.0


class _FailureLog:
    """Counts cache failures in the database and logs them at most once per LOG_INTERVAL."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last_logged = None
        self._unlogged = 0

    def record(self, operation, exc):
        from vpnmonitor.models import ServiceFailureCounter

        ServiceFailureCounter.add("cache")
        now = time.monotonic()
        with self._lock:
            self._unlogged += 1
            if self._last_logged is not None and now - self._last_logged < LOG_INTERVAL:
                return
            self._last_logged, count, self._unlogged = now, self._unlogged, 0
        logger.warning("Redis cache unreachable (%s: %s); serving without it (%d failed operations since the "
                       "last message; throttling is open)", operation, exc, count)


failures = _FailureLog()


class FailOpenRedisCache(RedisCache):
    def _guard(self, operation, call, fallback):
        try:
            return call()
        except UNREACHABLE as exc:
            failures.record(operation, exc)
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("add", lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version), False)

    def get(self, key, default=None, version=None):
        return self._guard("get", lambda: super(FailOpenRedisCache, self).get(key, default, version), default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set", lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version), None)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("touch", lambda: super(FailOpenRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key, version=None):
        return self._guard("delete", lambda: super(FailOpenRedisCache, self).delete(key, version), False)

    def get_many(self, keys, version=None):
        return self._guard("get_many", lambda: super(FailOpenRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._guard("has_key", lambda: super(FailOpenRedisCache, self).has_key(key, version), False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set_many", lambda: super(FailOpenRedisCache, self).set_many(data, timeout, version),
                           list(data))

    def delete_many(self, keys, version=None):
        return self._guard("delete_many", lambda: super(FailOpenRedisCache, self).delete_many(keys, version), None)
