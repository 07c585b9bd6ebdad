"""Start a real Celery worker process against the test database and the configured broker."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url():
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{auth}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


@contextlib.contextmanager
def celery_worker(queues="celery"):
    """A `celery worker` subprocess; yields the Popen. Its log is printed if the block fails."""
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}
    celery = Path(sys.executable).with_name("celery")
    log = tempfile.NamedTemporaryFile("w+", prefix="celery-worker-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(celery), "-A", "vpnmonitor", "worker", "--pool=solo", "--loglevel=INFO", "-Q", queues,
         "--without-gossip", "--without-mingle", "--hostname", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield process
    except BaseException:
        log.seek(0)
        sys.stderr.write("---- celery worker log ----\n" + log.read()[-5000:])
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone (a test may kill it)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        os.unlink(log.name)
