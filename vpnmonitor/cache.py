"""The Redis cache, failing open: when Redis cannot be reached a read is a miss and a write is skipped.

Throttling, the sign-in guard, the privacy-settings cache and everything else that uses the Django cache keep
serving while Redis is down (throttling is then open, and sign-in failures are counted per request only, so
nobody is locked out). Every cache method is guarded; incr() (and decr(), which calls it) answers as for a
missing key, with ValueError.

A circuit breaker spares requests the wait for a Redis that does not answer: after a failed operation the
cache skips Redis for BREAKER_SECONDS, serving as if it had failed, then tries again. redis-py opens a new
connection for the next operation, so nothing needs a restart when Redis is back.

`vpnmonitor_cache_failures_total` in /metrics counts the cache operations served without Redis: the ones that
failed and the ones skipped while the breaker was open. Each process counts them in memory and adds them to
the database counter on its first failure, then at most once per FLUSH_INTERVAL (so the metric may lag by a
minute per process, and a process that is stopped loses at most its last minute's count); it logs them at most
once per FLUSH_INTERVAL too.
"""

import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
BREAKER_SECONDS = 5.0
FLUSH_INTERVAL = 60.0
_MISSING = object()


class _FailureCount:
    """Cache operations served without Redis, counted in memory and added to the database now and then."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last_flushed = None
        self._last_logged = None
        self.pending = 0
        self._unlogged = 0

    def record(self, operation, exc=None):
        """Count one operation served without Redis: it failed with `exc`, or (no exc) the breaker skipped it."""
        now = time.monotonic()
        with self._lock:
            self.pending += 1
            self._unlogged += 1
            log = exc is not None and (self._last_logged is None or now - self._last_logged >= FLUSH_INTERVAL)
            if log:
                self._last_logged, count, self._unlogged = now, self._unlogged, 0
        if log:
            logger.warning("Redis cache unreachable (%s: %s); serving without it for %gs before trying again "
                           "(%d operations served without it since the last message; throttling is open)",
                           operation, exc, BREAKER_SECONDS, count)
        self.flush_if_due()

    def flush_if_due(self):
        now = time.monotonic()
        with self._lock:
            if not self.pending or (self._last_flushed is not None and now - self._last_flushed < FLUSH_INTERVAL):
                return
            self._last_flushed, count, self.pending = now, self.pending, 0
        self._write(count)

    def flush(self):
        """Add every pending count to the database now."""
        with self._lock:
            self._last_flushed, count, self.pending = time.monotonic(), self.pending, 0
        if count:
            self._write(count)

    def _write(self, count):
        from vpnmonitor.models import ServiceFailureCounter

        if not ServiceFailureCounter.add("cache", count):
            with self._lock:
                self.pending += count  # kept for the next flush


failures = _FailureCount()


# {Redis location: time.monotonic() until which it is left alone}, shared by the threads of a process (Django
# gives each thread its own cache object).
_skip_until = {}


class FailOpenRedisCache(RedisCache):
    def _guard(self, operation, call, fallback):
        location = self._location_key
        if time.monotonic() < _skip_until.get(location, 0.0):
            failures.record(operation)
            return fallback
        try:
            result = call()
        except UNREACHABLE as exc:
            _skip_until[location] = time.monotonic() + BREAKER_SECONDS
            failures.record(operation, exc)
            return fallback
        if failures.pending:
            failures.flush_if_due()
        return result

    @cached_property
    def _location_key(self):
        return ",".join(self._servers)

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

    def incr(self, key, delta=1, version=None):
        # Without Redis the key is missing, as Django's caches say for incr(): callers fall back to add().
        value = self._guard("incr", lambda: super(FailOpenRedisCache, self).incr(key, delta, version), _MISSING)
        if value is _MISSING:
            raise ValueError(f"Key '{key}' not found (Redis is unreachable).")
        return value

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set_many", lambda: super(FailOpenRedisCache, self).set_many(data, timeout, version),
                           list(data))

    def delete_many(self, keys, version=None):
        return self._guard("delete_many", lambda: super(FailOpenRedisCache, self).delete_many(keys, version), None)

    def clear(self):
        return self._guard("clear", lambda: super(FailOpenRedisCache, self).clear(), False)
