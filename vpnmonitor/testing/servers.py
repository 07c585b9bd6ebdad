"""Real servers for integration tests, each on a free loopback port: gunicorn, a private redis-server, Prometheus."""

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, headers=None, data=None, opener=None):
    """(status, headers, body text) of one request; redirects are returned, not followed."""
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    opener = opener or urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def signed_in_opener(base, username, password):
    """A urllib opener holding the session cookie of `username`, signed in through the login page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    _, _, page = fetch(f"{base}/accounts/login/", opener=opener)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
    status, _, _ = fetch(f"{base}/accounts/login/", data=form.encode(), opener=opener,
                         headers={"Referer": f"{base}/accounts/login/"})
    assert status == 302, "sign-in failed"
    return opener


def wait_until(check, timeout, message, process=None, log=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{message}: the process ended\n{log.read_text()[-3000:] if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(args, log, env=None, cwd=ROOT):
    with open(log, "w") as out:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextlib.contextmanager
def gunicorn(tmp_path, **environment):
    """gunicorn with deploy/gunicorn.conf.py on a free port, with this environment; yields its base URL."""
    port = free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", **environment}
    log = tmp_path / f"gunicorn-{port}.log"
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
               "vpnmonitor.wsgi"]
    with _process(command, log, env) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: fetch(f"{base}/api/v1/health")[0] in (200, 503), 60, "gunicorn did not answer",
                   process, log)
        yield base


class RedisServer:
    """A private redis-server (no persistence) that a test may stop and start again on the same port."""

    def __init__(self, tmp_path):
        self.program = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(self.program):
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.directory = tmp_path / f"redis-{self.port}"
        self.directory.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._stack = None

    def start(self):
        stack = contextlib.ExitStack()
        process = stack.enter_context(_process(
            [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], self.directory / "redis.log"))
        self._stack = stack

        def answers():
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")

        wait_until(answers, 20, "redis-server did not start", process, self.directory / "redis.log")
        return self

    def stop(self):
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


@contextlib.contextmanager
def prometheus(config, tmp_path):
    """Debian's prometheus with `config` on a free port; yields a function that calls its HTTP API."""
    program = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(program):
        pytest.skip("prometheus is not installed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    command = [program, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    with _process(command, log) as process:
        wait_until(lambda: fetch(f"{base}/-/ready")[0] == 200, 60, "prometheus did not start", process, log)

        def api(path, **params):
            query = f"?{urllib.parse.urlencode(params)}" if params else ""
            status, _, body = fetch(f"{base}/api/v1/{path}{query}")
            assert status == 200, body
            return json.loads(body)["data"]

        yield api
