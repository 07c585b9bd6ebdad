"""Dataset generators shared by the benchmarks: deterministic, streamed in batches, sized by arguments."""

import datetime as dt
import random
import time
from contextlib import contextmanager

from django.db import connection


def rng(seed=42):
    return random.Random(seed)


def batched(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def time_steps(start, end, step):
    current = start
    while current < end:
        yield current
        current += step


def bulk_load(model, rows, batch_size=5000):
    """Insert model instances from an iterable in batches; returns how many."""
    total = 0
    for batch in batched(rows, batch_size):
        model.objects.bulk_create(batch, batch_size=batch_size)
        total += len(batch)
    return total


@contextmanager
def stopwatch():
    box = {}
    started = time.perf_counter()
    yield box
    box["seconds"] = time.perf_counter() - started


def percentile(samples, fraction):
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency_ms(call, repeat=50, warmup=3):
    """p50 and p95 of call() in milliseconds."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 0.5), percentile(samples, 0.95)


def analyze():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def utcnow():
    return dt.datetime.now(dt.UTC)


def cpu_seconds():
    """(this process, every PostgreSQL process on this host) CPU seconds so far, user + system.

    The server's share counts its background writers too: they work for the writes being measured, and the
    backends that ended meanwhile (in the postmaster's reaped-children times). Read from /proc; the second
    value is None where there is none.
    """
    import os
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    ticks, server, found = os.sysconf("SC_CLK_TCK"), 0, False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return own, None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name, _, rest = text.partition(" (")[2].rpartition(") ")
        if name == "postgres":
            fields = rest.split()
            server += sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
            found = True
    return own, server / ticks if found else None


def timed_threads(function, parts):
    """Seconds for function(part) to run for every part at once, one thread each; a failure in any is raised."""
    import threading

    failures = []

    def run(part):
        try:
            function(part)
        except Exception as exc:  # noqa: BLE001 - raised below: a failed run must not time as a fast one
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return time.perf_counter() - started
