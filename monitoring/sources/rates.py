"""Per-client byte deltas and transfer rates between two OpenVPN status snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitoring.sources.status import ClientRecord, StatusSnapshot

__all__ = ["ClientRate", "client_rates", "to_mbps"]


@dataclass(frozen=True)
class ClientRate:
    """Traffic of one client session between two snapshots, seen from the server.

    ``bytes_received`` is what the server received from the client (client upload), ``bytes_sent`` what it
    sent to the client. ``seconds`` is the real time the delta covers; rates are None when it is zero.
    Mbps are decimal megabits per second (bytes * 8 / 1,000,000).
    """

    common_name: str
    client_id: int | None
    real_address: str
    connected_since: datetime
    new_session: bool
    seconds: float
    bytes_received: int
    bytes_sent: int
    bytes_received_per_second: float | None
    bytes_sent_per_second: float | None
    received_mbps: float | None
    sent_mbps: float | None


def to_mbps(bytes_per_second: float | None) -> float | None:
    """Convert bytes/s to decimal megabits/s."""
    return None if bytes_per_second is None else bytes_per_second * 8 / 1_000_000


def client_rates(previous: StatusSnapshot | None, current: StatusSnapshot) -> list[ClientRate]:
    """Return one ClientRate per client in ``current``, in the same order.

    The interval is the real time between the two TIME values, not the nominal poll interval. A session
    not in ``previous`` (new Connected Since or Client ID) or whose counters went down is new: its delta is
    its whole counter, over min(elapsed, time since it connected). TIME has one-second resolution, so two
    snapshots taken within the same second give deltas with ``seconds == 0`` and rates of None.
    """
    elapsed = None
    if previous is not None:
        elapsed = (current.time - previous.time).total_seconds()
        if elapsed < 0:
            raise ValueError(f"snapshots out of order: current {current.time} is before previous {previous.time}")
    earlier = {client.session_key: client for client in previous.clients} if previous is not None else {}
    return [_client_rate(earlier.get(client.session_key), client, elapsed, current) for client in current.clients]


def _client_rate(
    before: ClientRecord | None, now: ClientRecord, elapsed: float | None, current: StatusSnapshot
) -> ClientRate:
    continued = (
        before is not None
        and elapsed is not None
        and now.bytes_received >= before.bytes_received
        and now.bytes_sent >= before.bytes_sent
    )
    if continued:
        received, sent, seconds = (
            now.bytes_received - before.bytes_received,
            now.bytes_sent - before.bytes_sent,
            elapsed,
        )
    else:
        received, sent = now.bytes_received, now.bytes_sent
        seconds = _session_seconds(now, elapsed, current)
    return ClientRate(
        common_name=now.common_name,
        client_id=now.client_id,
        real_address=now.real_address,
        connected_since=now.connected_since,
        new_session=not continued,
        seconds=seconds,
        bytes_received=received,
        bytes_sent=sent,
        bytes_received_per_second=_per_second(received, seconds),
        bytes_sent_per_second=_per_second(sent, seconds),
        received_mbps=to_mbps(_per_second(received, seconds)),
        sent_mbps=to_mbps(_per_second(sent, seconds)),
    )


def _per_second(byte_count: int, seconds: float) -> float | None:
    return byte_count / seconds if seconds > 0 else None


def _session_seconds(client: ClientRecord, elapsed: float | None, current: StatusSnapshot) -> float:
    age = max((current.time - client.connected_since).total_seconds(), 0.0)
    return age if elapsed is None else min(elapsed, age)
