"""gunicorn settings for the vpnmonitor web process: `gunicorn -c deploy/gunicorn.conf.py vpnmonitor.wsgi`.

Values come from the environment (the same file systemd loads), so one copy serves every host.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Requests are short and database-bound; two workers per core keeps the database busy without queueing.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 9)))
worker_class = "sync"
# Ingest batches of 10,000 records and year-long analytics take seconds, not minutes.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that a slow leak never grows unbounded; jitter avoids all restarting at once.
max_requests = 2000
max_requests_jitter = 200
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The TLS-terminating proxy on this host (set BEHIND_PROXY=true too); comma-separated addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "vpnmonitor-web"
