"""Tests for the management interface client against a small in-process server speaking OpenVPN's protocol."""

import socket
import threading
import time
from pathlib import Path

import pytest

from monitoring.sources.management import LoadStats, ManagementClient, ManagementError, parse_management_address

FIXTURES = Path(__file__).parent / "fixtures"
BANNER = b">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n"


class FakeManagement:
    """Serves connections one after another like OpenVPN does; behaviour is chosen per test."""

    def __init__(self, *, password=None, unix_path=None, greeting=BANNER, status_mode="normal"):
        self.password = password
        self.greeting = greeting
        self.status_mode = status_mode
        self.received: list[str] = []
        self.connections = 0
        self.closed_by_client = threading.Event()
        if unix_path:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(unix_path))
            self.address = str(unix_path)
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.address = self.listener.getsockname()
        self.listener.listen(1)
        self.listener.settimeout(0.1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with connection:
                connection.settimeout(5)
                try:
                    self._talk(connection)
                except OSError:
                    pass

    def _talk(self, connection):
        reader = connection.makefile("rb")
        if self.password is not None and not self._log_in(connection, reader):
            return
        if self.status_mode == "silent":
            self.stopping.wait(3)
            return
        connection.sendall(self.greeting)
        for raw in reader:
            line = raw.decode().rstrip("\r\n")
            self.received.append(line)
            if line == "quit":
                self.closed_by_client.set()
                return
            if not self._answer(connection, line):
                return
        self.closed_by_client.set()

    def _log_in(self, connection, reader):
        connection.sendall(b"ENTER PASSWORD:")
        given = reader.readline().decode().rstrip("\r\n")
        self.received.append(f"<password {given}>")
        if given != self.password:
            connection.sendall(b"ERROR: bad password\r\nENTER PASSWORD:")
            return False
        connection.sendall(b"SUCCESS: password is correct\r\n")
        return True

    def _answer(self, connection, line):
        if line.startswith("status"):
            return self._send_status(connection, line)
        if line == "load-stats" and self.status_mode == "garbled":
            connection.sendall(b"SUCCESS: nclients=three\r\n")
            return True
        if line == "load-stats":
            connection.sendall(b">BYTECOUNT_CLI:1,100,200\r\n" + (FIXTURES / "management-load-stats.txt").read_bytes())
            return True
        connection.sendall(b"ERROR: unknown command [" + line.encode() + b"], enter 'help' for more options\r\n")
        return True

    def _send_status(self, connection, line):
        name = {"status 1": "management-status-1.txt", "status 2": "management-status-2.txt"}.get(
            line, "management-status-3.txt"
        )
        lines = (FIXTURES / name).read_bytes().splitlines(keepends=True)
        # Notifications arrive between lines of a command's output, never inside a line.
        body = b"".join(lines[:4]) + b">BYTECOUNT_CLI:2,3514,3522\r\n>INFO:hello\r\n" + b"".join(lines[4:])
        if self.status_mode == "cut":
            connection.sendall(body[: len(body) // 2])
            return False
        if self.status_mode == "stall":
            connection.sendall(body[: len(body) // 2])
            self.stopping.wait(3)
            return False
        for start in range(0, len(body), 37):  # odd-sized pieces exercise line reassembly
            connection.sendall(body[start : start + 37])
            time.sleep(0.001)
        return True


@pytest.fixture
def make_server():
    servers = []

    def start(**options):
        server = FakeManagement(**options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_password_login_status_3_and_interleaved_notifications(make_server):
    server = make_server(password="s3cret")
    with ManagementClient(server.address, password="s3cret", timeout=2) as client:
        snapshot = client.status()
        notifications = list(client.notifications)
    bob = next(c for c in snapshot.clients if c.common_name == "user-bob")
    assert (snapshot.version, bob.bytes_received, bob.client_id) == (3, 3514, 1)
    assert len(snapshot.clients) == 3
    assert ">BYTECOUNT_CLI:2,3514,3522" in notifications
    assert ">INFO:hello" in notifications
    assert server.closed_by_client.wait(2)
    assert server.received == ["<password s3cret>", "status 3", "quit"]


def test_unix_socket_without_password_and_load_stats(make_server, tmp_path):
    server = make_server(unix_path=tmp_path / "management.sock")
    with ManagementClient(tmp_path / "management.sock", timeout=2) as client:
        assert client.load_stats() == LoadStats(client_count=3, bytes_received=10504, bytes_sent=10644)
        text = client.status_text(2)
        assert client.notifications[0].startswith(">INFO:OpenVPN Management Interface")
    assert text.startswith("TITLE,OpenVPN 2.6.14")
    assert text.endswith("END\n")
    assert ">BYTECOUNT" not in text
    assert server.closed_by_client.wait(2)
    assert server.received == ["load-stats", "status 2", "quit"]


def test_status_1_over_management(make_server):
    server = make_server()
    with ManagementClient(server.address, timeout=2) as client:
        snapshot = client.status(1)
    assert snapshot.version == 1
    assert {c.virtual_address for c in snapshot.clients} == {"10.88.0.2", "10.88.0.3", "10.88.0.4"}


def test_password_required_but_not_configured(make_server):
    server = make_server(password="s3cret")
    with pytest.raises(ManagementError, match="asks for a password but none is set"):
        ManagementClient(server.address, timeout=2).connect()


def test_wrong_password_is_reported(make_server):
    server = make_server(password="s3cret")
    client = ManagementClient(server.address, password="guess", timeout=2)
    with pytest.raises(ManagementError, match="password rejected: 'ERROR: bad password'"):
        client.connect()
    assert client._socket is None


def test_silent_server_times_out_waiting_for_greeting(make_server):
    server = make_server(status_mode="silent")
    started = time.monotonic()
    with pytest.raises(ManagementError, match="timed out after 0.3s waiting for the management greeting"):
        ManagementClient(server.address, timeout=0.3).connect()
    assert time.monotonic() - started < 2


def test_stalled_status_output_times_out(make_server):
    server = make_server(status_mode="stall")
    with (
        ManagementClient(server.address, timeout=0.3) as client,
        pytest.raises(ManagementError, match="timed out .* waiting for the answer to the status 3 command"),
    ):
        client.status()


def test_connection_closed_mid_status(make_server):
    server = make_server(status_mode="cut")
    with (
        ManagementClient(server.address, timeout=2) as client,
        pytest.raises(ManagementError, match="connection closed while waiting"),
    ):
        client.status()


def test_error_answer_raises(make_server):
    server = make_server()
    with ManagementClient(server.address, timeout=2) as client:
        with pytest.raises(ManagementError, match=r"'bogus' failed: ERROR: unknown command \[bogus\]"):
            client.command("bogus")
        with pytest.raises(ManagementError, match="failed: ERROR"):
            client.command_single("bogus")


def test_unexpected_load_stats_answer(make_server):
    server = make_server(status_mode="garbled")
    with ManagementClient(server.address, timeout=2) as client, pytest.raises(ManagementError, match="nclients=three"):
        client.load_stats()


def test_not_a_management_interface(make_server):
    server = make_server(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ManagementError, match="not an OpenVPN management interface"):
        ManagementClient(server.address, timeout=2).connect()


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ManagementError, match="cannot connect"):
        ManagementClient(("127.0.0.1", port), timeout=1).connect()


def test_missing_unix_socket(tmp_path):
    with pytest.raises(ManagementError, match="cannot connect"):
        ManagementClient(str(tmp_path / "absent.sock"), timeout=1).connect()


def test_commands_must_be_one_line_and_need_a_connection(make_server):
    server = make_server()
    client = ManagementClient(server.address, timeout=2)
    with pytest.raises(ManagementError, match="not connected"):
        client.command("status 3")
    with client:
        with pytest.raises(ValueError, match="single line"):
            client.command("status 3\nkill user-bob")
        with pytest.raises(ValueError):
            client.status_text(4)
    client.close()  # closing twice is harmless


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7505", ("127.0.0.1", 7505)),
        ("vpn1.example.org:7505", ("vpn1.example.org", 7505)),
        ("[::1]:7505", ("::1", 7505)),
        ("/run/openvpn/server.sock", "/run/openvpn/server.sock"),
        ("unix:/run/openvpn/server.sock", "/run/openvpn/server.sock"),
    ],
)
def test_parse_management_address(text, expected):
    assert parse_management_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", "localhost:port", ":7505"])
def test_parse_management_address_rejects(text):
    with pytest.raises(ManagementError):
        parse_management_address(text)
