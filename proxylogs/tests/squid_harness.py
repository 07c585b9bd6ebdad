"""Run a real, throwaway Squid on 127.0.0.1 with a local origin server and CONNECT target, for integration tests."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BLOCKED_DOMAIN",
    "DENIED_CONNECT_IP",
    "DENIED_CONNECT_IP6",
    "DENIED_CONNECT_PORT",
    "PRIVATE_PATH",
    "SquidInstance",
    "SquidUnavailableError",
    "find_squid",
    "proxy_connect",
    "proxy_get",
    "running_squid",
]

BLOCKED_DOMAIN = "blocked.example"
DENIED_CONNECT_PORT = 22
DENIED_CONNECT_IP = "192.0.2.10"
DENIED_CONNECT_IP6 = "2001:db8::dead"
PRIVATE_PATH = "/private/"
_FAKE_AUTH_HELPER = "/usr/lib/squid/basic_fake_auth"

# basic_fake_auth accepts any user name and password: enough to get real 407 challenges and logged user names.
_AUTH_CONFIG = """\
auth_param basic program {helper}
auth_param basic children 1 startup=1 idle=1
auth_param basic realm vpnmonitor-test
acl private_path urlpath_regex ^{private}
acl authed proxy_auth REQUIRED
http_access deny private_path !authed
"""
ORIGIN_BODY = b"<html><body>" + b"hello from the origin " * 40 + b"</body></html>\n"

_CONFIG = """\
http_port 127.0.0.1:{port}
visible_hostname vpnmonitor-test-proxy
{effective_user}
pid_filename {workdir}/squid.pid
cache_log {workdir}/cache.log
access_log stdio:{workdir}/access.log squid
access_log stdio:{workdir}/access_combined.log combined
access_log stdio:{workdir}/access_common.log common
buffered_logs off
logfile_rotate 0
cache deny all
cache_mem 8 MB
coredump_dir {workdir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
connect_timeout 5 seconds

# -n: no reverse DNS for IP destinations, which would otherwise stall every raw-IP request on a dead resolver.
acl blocked dstdomain -n .{blocked}
acl denied_connect_port port {denied_port}
acl denied_connect_ip dst {denied_ip} {denied_ip6}
acl CONNECT method CONNECT
http_access deny blocked
http_access deny CONNECT denied_connect_port
http_access deny CONNECT denied_connect_ip
{auth}http_access allow localhost
http_access deny all
{extra}
"""


class SquidUnavailableError(RuntimeError):
    """Squid is not installed or did not start; the message says why."""


@dataclass(frozen=True)
class SquidInstance:
    """A running Squid plus the local servers it can reach; paths point at its log files."""

    proxy_host: str
    proxy_port: int
    origin_url: str
    connect_host: str
    connect_port: int
    auth_enabled: bool
    workdir: Path
    access_log: Path
    combined_log: Path
    common_log: Path
    cache_log: Path

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy_host}:{self.proxy_port}"

    def wait_for_lines(self, path: Path, count: int, timeout: float = 10.0) -> list[str]:
        """Poll ``path`` until it holds at least ``count`` complete lines; returns what is there at the deadline."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(encoding="utf-8", errors="replace")
                lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
            if len(lines) >= count or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)


def find_squid() -> str | None:
    """Path of the squid binary (PATH, then /usr/sbin), or None."""
    return shutil.which("squid") or shutil.which("squid", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._reply(200, ORIGIN_BODY, "text/html")
        elif self.path.startswith(PRIVATE_PATH):
            self._reply(200, b"members only\n", "text/plain")
        elif self.path.startswith("/files/"):
            self._reply(200, b"\x00" * 2048, "application/zip")
        else:
            self._reply(404, b"not here\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _EchoServer:
    """Accepts TCP connections and echoes what it receives: the target of allowed CONNECTs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="echo-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


def _write_config(workdir: Path, port: int, extra: str, auth: bool) -> Path:
    effective_user = ""
    if os.geteuid() == 0:
        # Squid refuses to keep root privileges; it switches to this user, which must own the log directory.
        user = "proxy" if _user_exists("proxy") else "nobody"
        effective_user = f"cache_effective_user {user}"
        shutil.chown(workdir, user=user)
    config = workdir / "squid.conf"
    config.write_text(_CONFIG.format(
        port=port, workdir=workdir, effective_user=effective_user, blocked=BLOCKED_DOMAIN,
        denied_port=DENIED_CONNECT_PORT, denied_ip=DENIED_CONNECT_IP, denied_ip6=DENIED_CONNECT_IP6, extra=extra,
        auth=_AUTH_CONFIG.format(helper=_FAKE_AUTH_HELPER, private=PRIVATE_PATH) if auth else "",
    ))
    return config


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, cache_log: Path, timeout: float) -> None:
    # Watch cache.log rather than probing the port: a probe connection would itself be logged (NONE_NONE/000).
    marker = "Accepting HTTP Socket connections at conn"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SquidUnavailableError(f"squid exited with {process.returncode}: {_tail(cache_log)}")
        with contextlib.suppress(OSError):
            text = cache_log.read_text(errors="replace")
            if marker in text and f"local=127.0.0.1:{port} " in text:
                return
        time.sleep(0.05)
    raise SquidUnavailableError(f"squid did not listen on port {port} within {timeout}s: {_tail(cache_log)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no cache.log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # Squid runs in its own session (start_new_session) so the group holds only it and its helpers.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_squid(extra_config: str = "", startup_timeout: float = 15.0) -> Iterator[SquidInstance]:
    """Start Squid, an HTTP origin and an echo server; yield a SquidInstance; tear everything down afterwards.

    Squid denies dstdomain BLOCKED_DOMAIN, CONNECT to port DENIED_CONNECT_PORT and to DENIED_CONNECT_IP(6), and,
    when the basic_fake_auth helper is installed (``auth_enabled``), asks for credentials under PRIVATE_PATH.

    Raises SquidUnavailableError if Squid is missing or fails to start.  The work directory (config, logs) is
    removed on exit unless VPNMONITOR_KEEP_SQUID_DIR=1.
    """
    binary = find_squid()
    if binary is None:
        raise SquidUnavailableError("squid binary not found (Debian package 'squid')")
    workdir = Path(tempfile.mkdtemp(prefix="vpnmonitor-squid-"))
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OriginHandler)
    origin.daemon_threads = True
    origin_thread = threading.Thread(target=origin.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    origin_thread.start()
    echo = _EchoServer()
    process: subprocess.Popen[bytes] | None = None
    stderr = (workdir / "stderr.log").open("wb")
    try:
        port = _free_port()
        auth = os.access(_FAKE_AUTH_HELPER, os.X_OK)
        config = _write_config(workdir, port, extra_config, auth)
        cache_log = workdir / "cache.log"
        process = subprocess.Popen(
            [binary, "-N", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )
        _wait_until_listening(process, port, cache_log, startup_timeout)
        yield SquidInstance(
            proxy_host="127.0.0.1",
            proxy_port=port,
            origin_url=f"http://127.0.0.1:{origin.server_address[1]}",
            connect_host="127.0.0.1",
            connect_port=echo.port,
            auth_enabled=auth,
            workdir=workdir,
            access_log=workdir / "access.log",
            combined_log=workdir / "access_combined.log",
            common_log=workdir / "access_common.log",
            cache_log=cache_log,
        )
    finally:
        if process is not None:
            _stop(process)
        stderr.close()
        origin.shutdown()
        origin.server_close()
        echo.close()
        if os.environ.get("VPNMONITOR_KEEP_SQUID_DIR") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def proxy_get(instance: SquidInstance, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET an absolute URL through the proxy; returns (status, body)."""
    conn = http.client.HTTPConnection(instance.proxy_host, instance.proxy_port, timeout=10)
    try:
        conn.request("GET", url, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def proxy_connect(instance: SquidInstance, target: str, payload: bytes = b"") -> tuple[int, bytes]:
    """CONNECT to ``target`` ("host:port") through the proxy; if allowed, send ``payload`` and read it back.

    Returns (status, echoed bytes).  The tunnel is closed before returning, which is when Squid logs it.
    """
    with socket.create_connection((instance.proxy_host, instance.proxy_port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        echoed = b""
        if status == 200 and payload:
            sock.sendall(payload)
            echoed = rest
            while len(echoed) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                echoed += chunk
        return status, echoed
