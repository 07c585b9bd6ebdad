"""Minimal client for the OpenVPN management interface: password login, `status 3` and `load-stats`."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import tzinfo
from typing import Self

from monitoring.sources.status import StatusSnapshot, parse_status

__all__ = ["LoadStats", "ManagementClient", "ManagementError", "parse_management_address"]

_PASSWORD_PROMPT = b"ENTER PASSWORD:"
_PASSWORD_OK = "SUCCESS: password is correct"
_RECV_SIZE = 65536

Address = tuple[str, int] | str


class ManagementError(Exception):
    """The management interface could not be reached, refused us, or answered unexpectedly."""


@dataclass(frozen=True)
class LoadStats:
    """Answer to `load-stats`; bytes_received is OpenVPN's bytesin (all bytes the server received)."""

    client_count: int
    bytes_received: int
    bytes_sent: int


def parse_management_address(text: str) -> Address:
    """Turn ``host:port``, ``[v6]:port``, ``unix:/path`` or ``/path`` into a socket address."""
    text = text.strip()
    if text.startswith("unix:"):
        return text.removeprefix("unix:")
    if text.startswith("/"):
        return text
    host, colon, port = text.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit() or not host:
        raise ManagementError(f"management address {text!r} is neither host:port nor a unix socket path")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ManagementClient:
    """One connection to an OpenVPN management interface; use as a context manager.

    OpenVPN serves a single management client at a time, so keep connections short.
    Real-time notifications (lines starting with ">") are skipped and kept in ``notifications``.
    """

    def __init__(self, address: Address | os.PathLike[str], *, password: str | None = None, timeout: float = 5.0):
        self.address = os.fspath(address) if isinstance(address, os.PathLike) else address
        self.password = password
        self.timeout = timeout
        self.notifications: list[str] = []
        self._socket: socket.socket | None = None
        self._buffer = bytearray()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ManagementClient({self.address!r})"

    def connect(self) -> None:
        """Open the connection, log in if asked for a password, and wait for the greeting."""
        if self._socket is not None:
            return
        self._socket = self._open_socket()
        try:
            self._greet(time.monotonic() + self.timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Say `quit` if still connected and close the socket; safe to call twice."""
        sock, self._socket = self._socket, None
        if sock is None:
            return
        try:
            sock.sendall(b"quit\n")
        except OSError:
            pass  # the server may already have gone; closing is all that is left to do
        finally:
            sock.close()
            self._buffer.clear()

    def command(self, line: str) -> list[str]:
        """Send a command whose answer is a block of lines ending with END; return the lines without END."""
        deadline = self._send(line)
        lines: list[str] = []
        while (reply := self._read_reply_line(deadline, line)) != "END":
            if not lines and reply.startswith("ERROR:"):
                raise ManagementError(f"{self.address!r}: {line!r} failed: {reply}")
            lines.append(reply)
        return lines

    def command_single(self, line: str) -> str:
        """Send a command answered by one SUCCESS:/ERROR: line; return the text after "SUCCESS: "."""
        deadline = self._send(line)
        reply = self._read_reply_line(deadline, line)
        if reply.startswith("SUCCESS:"):
            return reply.removeprefix("SUCCESS:").strip()
        raise ManagementError(f"{self.address!r}: {line!r} failed: {reply}")

    def status_text(self, version: int = 3) -> str:
        """Return the raw `status N` output, END line included."""
        if version not in (1, 2, 3):
            raise ValueError(f"status version must be 1, 2 or 3, not {version!r}")
        return "\n".join([*self.command(f"status {version}"), "END"]) + "\n"

    def status(self, version: int = 3, *, tz: tzinfo | None = None) -> StatusSnapshot:
        """Fetch and parse `status N` (default 3, the tab-separated form)."""
        return parse_status(self.status_text(version), tz=tz)

    def load_stats(self) -> LoadStats:
        """Fetch `load-stats` (client count and the server's total byte counters)."""
        answer = self.command_single("load-stats")
        values = dict(part.partition("=")[::2] for part in answer.split(","))
        try:
            return LoadStats(int(values["nclients"]), int(values["bytesin"]), int(values["bytesout"]))
        except (KeyError, ValueError) as exc:
            raise ManagementError(f"{self.address!r}: unexpected load-stats answer {answer!r}") from exc

    def _open_socket(self) -> socket.socket:
        try:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            return socket.create_connection(self.address, timeout=self.timeout)
        except TimeoutError as exc:
            raise ManagementError(f"{self.address!r}: connect timed out after {self.timeout}s") from exc
        except OSError as exc:
            raise ManagementError(f"{self.address!r}: cannot connect: {exc}") from exc

    def _greet(self, deadline: float) -> None:
        while True:
            if self._buffer.startswith(_PASSWORD_PROMPT):
                del self._buffer[: len(_PASSWORD_PROMPT)]
                self._log_in(deadline)
                return
            if b"\n" in self._buffer:
                line = self._pop_line()
                if line.startswith(">"):
                    self.notifications.append(line)
                    if line.startswith(">INFO:"):
                        return
                    continue
                raise ManagementError(f"{self.address!r}: not an OpenVPN management interface, it said {line!r}")
            self._receive(deadline, "the management greeting (another client may hold the interface)")

    def _log_in(self, deadline: float) -> None:
        if self.password is None:
            raise ManagementError(f"{self.address!r}: the management interface asks for a password but none is set")
        self._sendall(self.password.encode() + b"\n")
        reply = self._read_reply_line(deadline, "password")
        if reply.strip() != _PASSWORD_OK:
            raise ManagementError(f"{self.address!r}: management password rejected: {reply.strip()!r}")

    def _send(self, line: str) -> float:
        if self._socket is None:
            raise ManagementError(f"{self.address!r}: not connected")
        if "\n" in line or "\r" in line:
            raise ValueError("a management command is a single line")
        self._sendall(line.encode() + b"\n")
        return time.monotonic() + self.timeout

    def _sendall(self, data: bytes) -> None:
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise ManagementError(f"{self.address!r}: send failed: {exc}") from exc

    def _read_reply_line(self, deadline: float, waiting_for: str) -> str:
        """Next line that is not a real-time notification."""
        while True:
            while b"\n" not in self._buffer:
                self._receive(deadline, f"the answer to the {waiting_for} command")
            line = self._pop_line()
            if not line.startswith(">"):
                return line
            self.notifications.append(line)

    def _pop_line(self) -> str:
        end = self._buffer.index(b"\n")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return raw.rstrip(b"\r").decode("utf-8", errors="replace")

    def _receive(self, deadline: float, waiting_for: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ManagementError(f"{self.address!r}: timed out after {self.timeout}s waiting for {waiting_for}")
        try:
            self._socket.settimeout(remaining)
            chunk = self._socket.recv(_RECV_SIZE)
        except TimeoutError as exc:
            raise ManagementError(
                f"{self.address!r}: timed out after {self.timeout}s waiting for {waiting_for}"
            ) from exc
        except OSError as exc:
            raise ManagementError(f"{self.address!r}: receive failed: {exc}") from exc
        if not chunk:
            raise ManagementError(f"{self.address!r}: connection closed while waiting for {waiting_for}")
        self._buffer += chunk
