"""Run a job at most once at a time across every worker (a lock row in the database)."""

import contextlib
import os
import socket

from vpnmonitor.models import JobLock


@contextlib.contextmanager
def exclusive(name, seconds=300):
    """Yield True when this process holds the lock for `name`, False when another does."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    acquired = JobLock.acquire(name, seconds, owner)
    try:
        yield acquired
    finally:
        if acquired:
            JobLock.release(name)
