"""Run a job at most once at a time across every worker, with a lock that cannot outlive its holder.

On PostgreSQL the lock is a session advisory lock taken on the job's own database connection: the server
releases it when that connection ends, so a worker killed with SIGKILL (or a host that vanished, once its TCP
connection is gone) frees the job for the next run at once. Elsewhere (SQLite) it is a lease, a JobLock row
whose expiry a thread renews every JOB_LEASE_SECONDS / 2 while the job runs: a killed worker's lease lapses
within JOB_LEASE_SECONDS. Either way a job that was cut off resumes in its next run (imports from their
checkpoint, rollups by recomputing their buckets).
"""

import contextlib
import hashlib
import logging
import os
import socket
import threading
import uuid

from django.conf import settings
from django.db import DatabaseError, connection

from vpnmonitor.models import JobLock

logger = logging.getLogger(__name__)

# Names held by this process: an advisory lock is re-entrant within its session, a job here is not.
_held = set()
_held_lock = threading.Lock()


def advisory_key(name):
    """The 64-bit advisory-lock key of a job name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def exclusive(name):
    """Yield True when this process holds the lock for `name`, False when another run does."""
    with _held_lock:
        if name in _held:
            acquired = False
        else:
            _held.add(name)
            acquired = True
    if not acquired:
        yield False
        return
    try:
        lock = _advisory_lock if connection.vendor == "postgresql" else _lease
        with lock(name) as acquired:
            yield acquired
    finally:
        with _held_lock:
            _held.discard(name)


@contextlib.contextmanager
def _advisory_lock(name):
    key = advisory_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
        session = connection.connection
    try:
        yield acquired
    finally:
        if acquired:
            if connection.connection is not session:
                # The connection was lost during the job, and the lock with it (another run may hold it now).
                logger.warning("job %s lost its database connection, and its lock, while it ran", name)
            else:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
                except DatabaseError as exc:
                    logger.warning("job %s: could not release its lock (%s); it went with the connection", name, exc)


@contextlib.contextmanager
def _lease(name):
    seconds = settings.JOB_LEASE_SECONDS
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not JobLock.acquire(name, seconds, owner):
        yield False
        return
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(name, owner, seconds, stop), name=f"lease {name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        JobLock.release(name, owner)


def _renew(name, owner, seconds, stop):
    from django.db import connection as own_connection

    try:
        while not stop.wait(seconds / 2):
            try:
                if not JobLock.renew(name, owner, seconds):
                    logger.error("job %s lost its lease (it lapsed before it was renewed)", name)
            except DatabaseError as exc:
                logger.warning("job %s: could not renew its lease: %s", name, exc)
    finally:
        own_connection.close()
