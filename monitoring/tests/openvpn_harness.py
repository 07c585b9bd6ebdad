"""Run a throwaway OpenVPN server with real clients on 127.0.0.1 for integration tests."""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import itertools
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from monitoring.sources.management import ManagementClient, ManagementError
from monitoring.sources.status import IncompleteStatus, StatusSnapshot
from monitoring.sources.statusfile import read_status_file

__all__ = [
    "REQUIRE_ENV",
    "OpenVPNLab",
    "integration_unavailable_reason",
    "make_pki",
    "openvpn_lab",
    "openvpn_lab_fixture",
    "require_integration",
]

REQUIRE_ENV = "VPNMONITOR_REQUIRE_INTEGRATION"
DEFAULT_SUBNET = "10.213.77.0/24"
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_lab_numbers = itertools.count()


def find_openvpn() -> str | None:
    """Path of the openvpn binary; Debian installs it in /usr/sbin, which is not always on PATH."""
    return shutil.which("openvpn") or shutil.which("openvpn", path="/usr/sbin:/sbin:/usr/local/sbin")


def integration_unavailable_reason() -> str | None:
    """Why a real OpenVPN cannot run here, or None when it can."""
    if find_openvpn() is None:
        return "the openvpn binary is not installed (apt-get install openvpn)"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return "the cryptography package is needed to build the test PKI"
    return _tun_unavailable_reason()


def _tun_unavailable_reason() -> str | None:
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (mkdir -p /dev/net && mknod /dev/net/tun c 10 200)"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        return f"cannot open /dev/net/tun: {exc}"
    try:
        # Creating (and at close, dropping) a scratch device proves we hold CAP_NET_ADMIN.
        request = struct.pack("16sH", f"vmprobe{os.getpid() % 100000}".encode(), _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError as exc:
        return f"cannot create a tun device (need root/CAP_NET_ADMIN): {exc}"
    finally:
        os.close(fd)
    return None


def require_integration() -> None:
    """Skip the calling test when OpenVPN cannot run, or fail if VPNMONITOR_REQUIRE_INTEGRATION=1."""
    reason = integration_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the OpenVPN integration test cannot run: {reason}")
    pytest.skip(f"OpenVPN integration test skipped: {reason} (set {REQUIRE_ENV}=1 to make this a failure)")


# --- PKI --------------------------------------------------------------------------------------------------------


def make_pki(directory: Path, client_names: Sequence[str]) -> None:
    """Write ca.crt, server.crt/key and <name>.crt/key for each client into ``directory`` (EC P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write(stem: str, key, certificate) -> None:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{stem}.key").write_bytes(key_pem)
        (directory / f"{stem}.key").chmod(0o600)
        (directory / f"{stem}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("vpnmonitor test CA"))
        .issuer_name(name("vpnmonitor test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(x509, cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    for stem, purpose in [
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        *((n, ExtendedKeyUsageOID.CLIENT_AUTH) for n in client_names),
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name(stem))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(x509, cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, key, certificate)


def _key_usage(x509, *, cert_sign: bool):
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# --- processes --------------------------------------------------------------------------------------------------


@dataclass
class OpenVPNProcess:
    """One openvpn process (server or client) in its own process group."""

    name: str
    config_path: Path
    log_path: Path
    device: str
    process: subprocess.Popen | None = None

    def start(self, binary: str) -> None:
        self.process = subprocess.Popen(
            [binary, "--config", str(self.config_path)],
            cwd=self.config_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group (lets a client send its exit notification), SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"


@dataclass
class OpenVPNLab:
    """A running OpenVPN server with clients; what tests need to observe and disturb it."""

    workdir: Path
    pki_dir: Path
    subnet: ipaddress.IPv4Network
    management_host: str
    management_port: int
    server_port: int
    status_path: Path
    log_path: Path
    server: OpenVPNProcess
    clients: dict[str, OpenVPNProcess] = field(default_factory=dict)
    management_password: str | None = None

    @property
    def server_tunnel_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def management_address(self) -> tuple[str, int]:
        return (self.management_host, self.management_port)

    def management(self, timeout: float = 3.0) -> ManagementClient:
        return ManagementClient(self.management_address, password=self.management_password, timeout=timeout)

    def status(self) -> StatusSnapshot:
        """`status 3` over the management interface, parsed."""
        with self.management() as client:
            return client.status(3)

    def wait_for_status(self, predicate: Callable[[StatusSnapshot], bool], timeout: float = 15.0) -> StatusSnapshot:
        """Poll `status 3` until ``predicate`` holds; raise TimeoutError with the last snapshot otherwise."""
        return self._wait(self.status, predicate, timeout, ManagementError)

    def wait_for_status_file(
        self, predicate: Callable[[StatusSnapshot], bool], timeout: float = 15.0
    ) -> StatusSnapshot:
        """Poll the status file (rewritten every second) until ``predicate`` holds."""
        return self._wait(lambda: read_status_file(self.status_path), predicate, timeout, (OSError, IncompleteStatus))

    def _wait(self, read, predicate, timeout: float, transient) -> StatusSnapshot:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self._check_server_alive()
            try:
                last = read()
            except transient as exc:
                last = exc
            else:
                if predicate(last):
                    return last
            time.sleep(0.2)
        raise TimeoutError(f"condition not met within {timeout}s; last seen: {last!r}")

    def send_traffic(self, name: str, byte_count: int, destination: str | None = None) -> None:
        """Send UDP datagrams into client ``name``'s tunnel (to the server's tunnel IP unless told otherwise).

        The socket is bound to the client's tun device, so the packets go through that client's OpenVPN
        process and the server even though every endpoint lives on this host.
        """
        payload = b"x" * 1000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.clients[name].device.encode())
            for _ in range(max(1, byte_count // len(payload))):
                sender.sendto(payload, (destination or self.server_tunnel_ip, 9))

    def stop_client(self, name: str) -> None:
        """Terminate one client the way an operator would (SIGTERM, which sends explicit-exit-notify)."""
        self.clients[name].stop()

    def logs(self) -> str:
        parts = [f"===== {self.server.name} log ({self.log_path}) =====\n{self.server.log_text()}"]
        parts += [f"===== {c.name} log ({c.log_path}) =====\n{c.log_text()}" for c in self.clients.values()]
        return "\n".join(parts)

    def _check_server_alive(self) -> None:
        if not self.server.running:
            raise RuntimeError(f"openvpn server exited with {self.server.process.returncode}")

    def stop_all(self) -> None:
        for process in [*self.clients.values(), self.server]:
            with suppress(OSError, subprocess.TimeoutExpired):
                process.stop()


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _device_name(lab_number: int, role: str) -> str:
    # Linux limits interface names to 15 characters; pid and lab number keep parallel labs apart.
    return f"vm{os.getpid() % 100000}{lab_number % 100}{role}"[:15]


def _server_config(lab: OpenVPNLab) -> str:
    return f"""\
mode server
tls-server
proto udp4
local 127.0.0.1
port {lab.server_port}
dev {lab.server.device}
dev-type tun
topology subnet
server {lab.subnet.network_address} {lab.subnet.netmask}
ca {lab.pki_dir / "ca.crt"}
cert {lab.pki_dir / "server.crt"}
key {lab.pki_dir / "server.key"}
dh none
keepalive 1 4
management {lab.management_host} {lab.management_port}{management_password_file(lab)}
status {lab.status_path} 1
status-version 2
verb 3
log {lab.log_path}
"""


def management_password_file(lab: OpenVPNLab) -> str:
    """' <file>' for the server's management line when the lab has a management password, else ''."""
    if lab.management_password is None:
        return ""
    path = lab.workdir / "management.pw"
    path.write_text(lab.management_password + "\n")
    return f" {path}"


def _client_config(lab: OpenVPNLab, client: OpenVPNProcess) -> str:
    return f"""\
client
proto udp4
remote 127.0.0.1 {lab.server_port}
dev {client.device}
dev-type tun
nobind
route-nopull
pull-filter ignore redirect-gateway
remote-cert-tls server
ca {lab.pki_dir / "ca.crt"}
cert {lab.pki_dir / f"{client.name}.crt"}
key {lab.pki_dir / f"{client.name}.key"}
explicit-exit-notify 1
connect-retry 1
verb 3
log {client.log_path}
"""


@contextmanager
def openvpn_lab(
    client_names: Sequence[str] = ("user-alice", "user-bob"),
    *,
    subnet: str = DEFAULT_SUBNET,
    connect_timeout: float = 20.0,
    workdir: Path | None = None,
    management_password: str | None = None,
) -> Iterator[OpenVPNLab]:
    """Start a server and clients, wait until every client has a virtual address, yield, then tear down.

    On any error inside the block the OpenVPN logs are printed to stderr; processes are always killed.
    """
    binary = find_openvpn()
    if binary is None:
        raise RuntimeError("openvpn binary not found")
    with tempfile.TemporaryDirectory(prefix="vpnmonitor-openvpn-", dir=workdir) as tmp:
        lab = _new_lab(Path(tmp), client_names, ipaddress.ip_network(subnet), management_password)
        try:
            _start(lab, binary, connect_timeout)
            yield lab
        except BaseException:
            print(lab.logs(), file=sys.stderr)
            raise
        finally:
            lab.stop_all()


def _new_lab(root: Path, client_names: Sequence[str], subnet: ipaddress.IPv4Network,
             management_password: str | None = None) -> OpenVPNLab:
    pki_dir = root / "pki"
    make_pki(pki_dir, client_names)
    lab_number = next(_lab_numbers)
    server = OpenVPNProcess("server", root / "server.conf", root / "server.log", _device_name(lab_number, "s"))
    lab = OpenVPNLab(
        workdir=root,
        pki_dir=pki_dir,
        subnet=subnet,
        management_host="127.0.0.1",
        management_port=_free_port(socket.SOCK_STREAM),
        server_port=_free_port(socket.SOCK_DGRAM),
        status_path=root / "openvpn-status.log",
        log_path=server.log_path,
        server=server,
        management_password=management_password,
    )
    for index, name in enumerate(client_names):
        lab.clients[name] = OpenVPNProcess(
            name, root / f"{name}.conf", root / f"{name}.log", _device_name(lab_number, f"c{index}")
        )
    server.config_path.write_text(_server_config(lab))
    for client in lab.clients.values():
        client.config_path.write_text(_client_config(lab, client))
    return lab


def _start(lab: OpenVPNLab, binary: str, connect_timeout: float) -> None:
    lab.server.start(binary)
    _wait_for_management(lab, deadline=time.monotonic() + 10)
    for client in lab.clients.values():
        client.start(binary)
    expected = set(lab.clients)
    lab.wait_for_status(
        lambda s: {c.common_name for c in s.clients if c.virtual_address} >= expected, timeout=connect_timeout
    )


def _wait_for_management(lab: OpenVPNLab, deadline: float) -> None:
    while True:
        lab._check_server_alive()
        try:
            with lab.management(timeout=1.0):
                return
        except ManagementError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def openvpn_lab_fixture(request) -> Iterator[OpenVPNLab]:
    """A running lab with user-alice and user-bob; import it into a test module to use it (skips if unavailable)."""
    require_integration()
    with openvpn_lab() as lab:
        request.node.openvpn_lab = lab  # lets conftest attach the logs to a failure report
        yield lab
