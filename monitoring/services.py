"""Writes of the monitoring app: recording polls, polling servers, rollups and certificate scans."""

import dataclasses
import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from monitoring import rollups as usage_rollups
from monitoring.models import (
    Certificate,
    PollQuarter,
    PollRecord,
    RollupState,
    UsageSample,
    VpnClient,
    VpnServer,
    VpnSession,
)
from monitoring.sources.management import ManagementClient, ManagementError, parse_management_address
from monitoring.sources.rates import client_rates
from monitoring.sources.serverlog import parse_log_line
from monitoring.sources.status import (
    ClientRecord,
    IncompleteStatus,
    StatusParseError,
    StatusSnapshot,
    merge_duplicate_clients,
)
from monitoring.sources.statusfile import read_status_file
from vpnmonitor import retention, rollups, timeseries
from vpnmonitor.db import update_fields
from vpnmonitor.secrets_at_rest import reveal
from vpnmonitor.tailing import Checkpoint, read_new_lines

logger = logging.getLogger(__name__)


@dataclass
class PollResult:
    server: str
    ok: bool = True
    skipped: str = ""
    error: str = ""
    connections: int = 0
    opened: int = 0
    closed: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    clients: list[str] = field(default_factory=list)


def connection_key(record):
    """The stable text key of a connection: server-side Client ID + Connected Since (see ClientRecord)."""
    return "|".join(part.isoformat() if isinstance(part, dt.datetime) else str(part) for part in record.session_key)


def _record_of(session):
    """The ClientRecord a stored open session stands for (to compare it with a new status read)."""
    return ClientRecord(
        common_name=session.common_name, real_address=session.real_address, real_ip=session.real_ip,
        real_port=session.real_port, protocol=session.protocol or None, virtual_address=session.virtual_address,
        virtual_ipv6=session.virtual_ipv6, bytes_received=session.bytes_received, bytes_sent=session.bytes_sent,
        connected_since=session.started_at, username=session.username or None,
        client_id=session.openvpn_client_id,
        peer_id=session.peer_id, cipher=session.cipher or None,
    )


@transaction.atomic
def record_poll(server, snapshot: StatusSnapshot, *, now=None) -> PollResult:
    """Apply one status read: connections open/close, client state and rates, raw samples, a poll record.

    Rates use the real time between this read's TIME and the previous one (client_rates), a
    counter that went down or a new Connected Since is a new connection, and a read whose TIME is
    not newer than the last one (an unchanged status file) changes nothing.
    """
    now = now or timezone.now()
    server = VpnServer.objects.select_for_update().get(pk=server.pk)
    result = PollResult(server=server.name)
    if server.last_status_time is not None and snapshot.time <= server.last_status_time:
        result.skipped = "status not updated since the last read"
        return result
    clients, merged = merge_duplicate_clients(snapshot.clients)
    if merged:
        logger.warning("status of %s lists %d CLIENT_LIST row(s) twice; counted once", server.name, merged)
        snapshot = dataclasses.replace(snapshot, clients=clients)

    open_sessions = {s.connection_key: s for s in server.sessions.filter(status=VpnSession.Status.ACTIVE)}
    previous = None
    if server.last_status_time is not None:
        previous = StatusSnapshot(
            time=server.last_status_time, title=None, version=snapshot.version,
            clients=[_record_of(s) for s in open_sessions.values()],
        )
    rates = client_rates(previous, snapshot)
    interval = (snapshot.time - server.last_status_time).total_seconds() if previous else None

    clients = _clients_for(server, {record.common_name for record in snapshot.clients}, now)
    per_client = {}
    new_sessions, seen_sessions = [], []
    for record, rate in zip(snapshot.clients, rates, strict=True):
        key = connection_key(record)
        client = clients[record.common_name]
        session = open_sessions.pop(key, None)
        if session is None:
            session = VpnSession(server=server, connection_key=key, started_at=record.connected_since, created_at=now)
            new_sessions.append(session)
        else:
            seen_sessions.append(session)
        _copy_record(session, record, client, snapshot.time, now)
        totals = per_client.setdefault(client.pk, {"client": client, "rx": 0, "tx": 0, "rx_rate": 0.0,
                                                   "tx_rate": 0.0, "connections": 0, "seconds": 0.0})
        totals["rx"] += rate.bytes_received
        totals["tx"] += rate.bytes_sent
        totals["rx_rate"] += rate.bytes_received_per_second or 0.0
        totals["tx_rate"] += rate.bytes_sent_per_second or 0.0
        totals["connections"] += 1
        totals["seconds"] = max(totals["seconds"], rate.seconds)
        totals["record"] = record

    VpnSession.objects.bulk_create(new_sessions)
    # A continuing connection keeps its addresses (they are part of what identifies it); only its
    # counters and times move.
    update_fields(seen_sessions, _SESSION_COUNTERS)
    gone = list(open_sessions.values())
    for session in gone:
        session.status = VpnSession.Status.COMPLETED
        session.ended_at = snapshot.time
        session.disconnect_reason = session.disconnect_reason or "connection closed"
        session.updated_at = now
    update_fields(gone, ["status", "ended_at", "disconnect_reason", "updated_at"])

    samples = []
    for totals in per_client.values():
        client, record = totals["client"], totals["record"]
        client.status = VpnClient.Status.ACTIVE
        client.connections = totals["connections"]
        client.real_address = record.real_address
        client.virtual_address = record.virtual_address
        client.virtual_ipv6 = record.virtual_ipv6
        client.recv_rate_bps = totals["rx_rate"]
        client.sent_rate_bps = totals["tx_rate"]
        client.total_bytes_received += totals["rx"]
        client.total_bytes_sent += totals["tx"]
        client.last_seen = now
        samples.append(UsageSample(
            server=server, client=client, timestamp=snapshot.time, bytes_received=totals["rx"],
            bytes_sent=totals["tx"], interval_seconds=interval if interval is not None else totals["seconds"],
        ))
    update_fields(
        [t["client"] for t in per_client.values()],
        ["status", "connections", "real_address", "virtual_address", "virtual_ipv6", "recv_rate_bps",
         "sent_rate_bps", "total_bytes_received", "total_bytes_sent", "last_seen"],
    )
    VpnClient.objects.filter(server=server, status=VpnClient.Status.ACTIVE).exclude(pk__in=per_client).update(
        status=VpnClient.Status.DISCONNECTED, connections=0, recv_rate_bps=0, sent_rate_bps=0
    )
    store_samples(samples)
    result.bytes_received = sum(s.bytes_received for s in samples)
    result.bytes_sent = sum(s.bytes_sent for s in samples)
    PollRecord.objects.create(
        server=server, timestamp=snapshot.time, active_connections=len(snapshot.clients),
        active_clients=len(per_client), bytes_received=result.bytes_received, bytes_sent=result.bytes_sent,
    )
    _add_to_quarter(server, snapshot.time, result.bytes_received, result.bytes_sent, len(per_client),
                    len(snapshot.clients))
    server.last_status_time = snapshot.time
    server.save(update_fields=["last_status_time"])
    result.connections = len(snapshot.clients)
    result.opened, result.closed = len(new_sessions), len(gone)
    result.clients = sorted({record.common_name for record in snapshot.clients})
    return result


def _add_to_quarter(server, moment, received, sent, clients, connections):
    """Fold one read into its 15-minute row (polls of a server are serialized by its row lock)."""
    bucket = timeseries.floor_time(moment, 900)
    updated = PollQuarter.objects.filter(server=server, bucket=bucket).update(
        bytes_received=F("bytes_received") + received, bytes_sent=F("bytes_sent") + sent,
        max_clients=Greatest("max_clients", Value(clients)),
        max_connections=Greatest("max_connections", Value(connections)), polls=F("polls") + 1,
    )
    if not updated:
        PollQuarter.objects.create(server=server, bucket=bucket, bytes_received=received, bytes_sent=sent,
                                   max_clients=clients, max_connections=connections, polls=1)


_SESSION_COUNTERS = ["bytes_received", "bytes_sent", "last_status_time", "updated_at"]


def _copy_record(session, record, client, status_time, now):
    session.client = client
    session.common_name = record.common_name
    session.openvpn_client_id = record.client_id
    session.peer_id = record.peer_id
    session.real_address = record.real_address
    session.real_ip = record.real_ip
    session.real_port = record.real_port
    session.protocol = record.protocol or ""
    session.virtual_address = record.virtual_address
    session.virtual_ipv6 = record.virtual_ipv6
    session.username = record.username or ""
    session.cipher = record.cipher or ""
    session.bytes_received = record.bytes_received
    session.bytes_sent = record.bytes_sent
    session.last_status_time = status_time
    session.updated_at = now


def _clients_for(server, common_names, now):
    """VpnClient rows of these common names on server, created when first seen."""
    existing = {c.common_name: c for c in VpnClient.objects.filter(server=server, common_name__in=common_names)}
    missing = [VpnClient(server=server, common_name=name, first_seen=now, last_seen=now)
               for name in sorted(common_names - existing.keys())]
    if missing:
        VpnClient.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {c.common_name: c for c in VpnClient.objects.filter(server=server, common_name__in=common_names)}
    return existing


def read_status(server) -> StatusSnapshot:
    """Read `status 3` from the management interface, or the status file."""
    if server.status_file:
        return read_status_file(server.status_file, tz=server.tzinfo)
    address = parse_management_address(server.management_socket or server.management_address)
    with ManagementClient(address, password=reveal(server.management_password) or None, timeout=5.0) as management:
        return management.status(3, tz=server.tzinfo)


def poll_server(server, *, now=None) -> PollResult:
    """Read one server (and its log, when set) and record what they say; failures are stored, never raised.

    Whatever goes wrong inside the poll (a bad source, a bug, a database error) is caught here, so the
    caller goes on with the next server; the server then shows as failing with a short error (see poll_error).
    """
    now = now or timezone.now()
    try:
        snapshot = read_status(server)
        result = record_poll(server, snapshot, now=now)
        if server.log_file:
            tail_server_log(server)
    except IncompleteStatus as exc:
        # A half-written status file: skip it, the next read gets the complete one.
        result = PollResult(server=server.name, skipped=f"half-written status skipped: {poll_error(exc, server)}")
    except (ManagementError, StatusParseError, OSError, ValueError) as exc:
        logger.warning("poll of %s failed: %s", server.name, exc)
        result = PollResult(server=server.name, ok=False, error=poll_error(exc, server))
    except Exception as exc:
        logger.exception("poll of %s failed", server.name)
        result = PollResult(server=server.name, ok=False, error=poll_error(exc, server))
    updates = {"last_polled_at": now}
    if result.ok:
        updates.update(last_success_at=now, last_error="")
    else:
        updates["last_error"] = result.error
    VpnServer.objects.filter(pk=server.pk).update(**updates)
    return result


POLL_ERROR_LENGTH = 200
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def poll_error(exc, server) -> str:
    """A short description of a failed poll for last_error, health and admin; the full one goes to the log.

    It names the kind of failure without file contents, paths or passwords: quoted text (which the parser and
    the management client use for what they read) is dropped, the server's paths and password are replaced by
    what they are, and errors we do not expect keep only their class name.
    """
    kind = exc.__class__.__name__
    if isinstance(exc, OSError):
        detail = exc.strerror or "cannot be read"
        what = "management interface" if isinstance(exc, ConnectionError) else "file"
        return f"{kind}: {what}: {detail}"[:POLL_ERROR_LENGTH]
    if not isinstance(exc, (ManagementError, StatusParseError, ValueError)):
        return f"{kind}: unexpected error while recording the poll (details in the worker log)"
    text = str(exc)
    for secret, label in ((server.management_password, "password"), (server.status_file, "status file"),
                          (server.management_socket, "management socket"), (server.log_file, "log file"),
                          (server.pki_dir, "PKI directory")):
        if secret:
            text = text.replace(secret, label)
    text = _QUOTED.sub("…", text).removeprefix("…: ")
    return f"{kind}: {text}"[:POLL_ERROR_LENGTH]


# ---- rollups -------------------------------------------------------------------------------

def store_samples(samples):
    """Insert usage samples and add them to the usage rollups (monitoring.rollups), in one transaction.

    The only writer of UsageSample rows: polls and the demo data store them here."""
    with transaction.atomic():
        UsageSample.objects.bulk_create(samples, batch_size=2000)
        rollups.add(UsageSample, [
            {"timestamp": s.timestamp, "client_id": s.client_id, "server_id": s.server_id,
             "bytes_received": s.bytes_received, "bytes_sent": s.bytes_sent}
            for s in samples
        ])


# table: its rollup (the tables' watermarks in RollupState keep these names)
ROLLUPS = usage_rollups.BY_TABLE


def rollup(table, *, now=None, chunk=dt.timedelta(days=2)):
    """Repair: recount table's buckets from the raw samples, since its watermark (the last bucket again).

    Samples are added to the rollups when they are stored (store_samples), so this changes nothing unless
    samples were written some other way; it recounts the buckets whole and replaces them, so running it any
    number of times gives the same numbers. Buckets that may have lost samples to retention (before the last
    prune's cutoff) are never recounted: the rollups keep their history after the samples are pruned. Each
    window of buckets is replaced in one transaction with polls held off (their servers' rows are locked), so
    no sample is stored between the count and the replace. Returns how many rollup rows were written.
    """
    declared = ROLLUPS[table]
    step = declared.step
    now = now or timezone.now()
    state = RollupState.objects.filter(table=table).first()
    if state is not None:
        start = timeseries.floor_time(state.rolled_until, step) - step
    else:
        first = UsageSample.objects.order_by("timestamp").values_list("timestamp", flat=True).first()
        if first is None:
            return 0
        start = timeseries.floor_time(first, step)
    pruned = retention.policy("vpn_raw")
    if pruned.last_pruned_at is not None:
        # Samples before the last prune's cutoff may be gone: start at the first bucket after it.
        cutoff = pruned.last_pruned_at - dt.timedelta(days=pruned.days)
        complete = timeseries.floor_time(cutoff, step)
        start = max(start, complete if complete == cutoff else complete + step)
    end = timeseries.floor_time(now, step) + step  # the current, partial bucket too
    written = 0
    while start < end:
        stop = min(start + max(chunk, step), end)
        with transaction.atomic():
            list(VpnServer.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
            written += _recount(declared, start, stop)
        start = stop
    RollupState.objects.update_or_create(table=table, defaults={"rolled_until": now})
    return written


def _recount(declared, start, end):
    """Replace the rollup's rows of the buckets in [start, end) with the counts of their samples."""
    counts = rollups.counts_in(declared, UsageSample.objects.filter(timestamp__gte=start, timestamp__lt=end))
    model = declared.rollup_model
    model.objects.filter(bucket__gte=start, bucket__lt=end).delete()
    rollups.upsert(declared, counts)
    return len(counts)


def rollup_all(*, now=None):
    """Repair every usage rollup since its watermark (see rollup)."""
    return {table: rollup(table, now=now) for table in ROLLUPS}


# ---- certificates ---------------------------------------------------------------------------

def scan_certificates(server, *, now=None):
    """Read pki/issued/*.crt and pki/index.txt of server; returns how many certificates were found."""
    from cryptography import x509

    now = now or timezone.now()
    pki = Path(server.pki_dir)
    revoked = _revocations(pki / "index.txt")
    seen = []
    for path in sorted((pki / "issued").glob("*.crt")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (ValueError, OSError) as exc:
            logger.warning("certificate %s unreadable: %s", path, exc)
            continue
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        serial = format(cert.serial_number, "X")
        key = serial.lstrip("0") or "0"
        Certificate.objects.update_or_create(
            server=server, file=path.name,
            defaults={
                "common_name": str(names[0].value) if names else "", "serial": serial,
                "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
                "revoked": key in revoked, "revoked_at": revoked.get(key), "scanned_at": now,
            },
        )
        seen.append(path.name)
    Certificate.objects.filter(server=server).exclude(file__in=seen).delete()
    return len(seen)


def scan_new_pki_dir(server):
    """Scan a server's certificates as soon as it is added or its PKI directory changes (the daily scan stays).

    Returns how many certificates were found; an unreadable directory is logged and counts as none found.
    """
    try:
        return scan_certificates(server)
    except OSError as exc:
        logger.warning("certificate scan of %s failed: %s", server.name, exc)
        return 0


def _revocations(index_path):
    """{serial (hex, no leading zeros): revocation time or None} from an OpenSSL CA index.txt."""
    out = {}
    try:
        lines = index_path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split("\t")
        if len(fields) < 4 or fields[0] != "R":
            continue
        when = fields[2].split(",")[0]
        try:
            stamp = dt.datetime.strptime(when, "%y%m%d%H%M%SZ" if len(when) == 13 else "%Y%m%d%H%M%SZ")
            stamp = stamp.replace(tzinfo=dt.UTC)
        except ValueError:
            stamp = None
        out[fields[3].upper().lstrip("0") or "0"] = stamp
    return out


# ---- server log: failed connections and peer info ------------------------------------------

ATTEMPT_WINDOW = dt.timedelta(seconds=60)
STATE_TTL = dt.timedelta(minutes=10)


def tail_server_log(server, *, max_batches=50):
    """Read new lines of the server's log; failures become FAILED sessions, peer info fills OS and device.

    The checkpoint and the per-peer state are saved with the sessions they produced, batch by
    batch, so a line is never counted twice and a crash loses nothing.
    """
    tz = server.tzinfo
    state = dict(server.log_checkpoint or {})
    checkpoint = Checkpoint.from_dict(state.get("position"))
    counts = {"lines": 0, "failed": 0, "peer_info": 0}
    for number, batch in enumerate(read_new_lines(server.log_file, checkpoint)):
        events = [event for line in batch.lines if (event := parse_log_line(line, tz))]
        with transaction.atomic():
            peers = state.setdefault("peers", {})
            for event in events:
                _apply_log_event(server, event, peers, counts)
            counts["peer_info"] += _attach_peer_info(server, peers)
            _forget_old(peers, batch_time=events[-1].time if events else None)
            state["position"] = batch.checkpoint.to_dict()
            VpnServer.objects.filter(pk=server.pk).update(log_checkpoint=state)
        counts["lines"] += len(batch.lines)
        if number + 1 >= max_batches:
            break
    server.log_checkpoint = state
    return counts


def _apply_log_event(server, event, peers, counts):
    peer = peers.setdefault(event.peer, {"seen": event.time.isoformat(), "info": {}})
    peer["seen"] = event.time.isoformat()
    if event.kind == "peer_info":
        peer["info"][event.key] = event.value
        return
    if event.kind == "connected":
        peer["connected"] = event.common_name
        return
    attempt = peer.get("attempt")
    if attempt is None or event.time - dt.datetime.fromisoformat(attempt) > ATTEMPT_WINDOW:
        attempt = peer["attempt"] = event.time.isoformat()
    info = peer["info"]
    session, created = VpnSession.objects.get_or_create(
        server=server, connection_key=f"failed|{event.peer}|{attempt}",
        defaults={
            "status": VpnSession.Status.FAILED, "common_name": event.common_name or "",
            "started_at": dt.datetime.fromisoformat(attempt), "ended_at": event.time, "last_status_time": event.time,
            "disconnect_reason": event.reason, "real_address": event.peer, "real_ip": event.peer_ip,
            "real_port": event.peer_port, "os_type": info.get("IV_PLAT", ""), "os_version": info.get("IV_VER", ""),
            "device_id": info.get("IV_HWADDR", ""),
        },
    )
    if created:
        counts["failed"] += 1
        return
    # Later lines of the same attempt: keep the first (most specific) reason, learn the name if now known.
    session.ended_at = event.time
    session.updated_at = timezone.now()
    if event.common_name and not session.common_name:
        session.common_name = event.common_name
    session.save(update_fields=["ended_at", "updated_at", "common_name"])


def _attach_peer_info(server, peers):
    """Give sessions opened from the same peer address the OS, version and device it announced."""
    updated = 0
    for address, peer in peers.items():
        info = peer["info"]
        if not info or peer.get("attached"):
            continue
        host, _, port = address.rpartition(":")
        host = host.removeprefix("[AF_INET6]").removeprefix("[AF_INET]").strip("[]")
        matched = VpnSession.objects.filter(server=server, real_ip=host, real_port=int(port), os_type="").update(
            os_type=info.get("IV_PLAT", ""), os_version=info.get("IV_VER", ""),
            device_id=info.get("IV_HWADDR", ""), updated_at=timezone.now(),
        )
        if matched:
            peer["attached"] = True
            updated += matched
    return updated


def _forget_old(peers, batch_time):
    if batch_time is None:
        return
    for address in [a for a, p in peers.items() if batch_time - dt.datetime.fromisoformat(p["seen"]) > STATE_TTL]:
        del peers[address]
