"""Demo data for the monitoring app: two servers, clients with a week of daily-rhythm traffic, sessions."""

import datetime as dt
import math
import random

from monitoring import services
from monitoring.models import (
    Certificate,
    PollQuarter,
    PollRecord,
    UsageSample,
    UserProfile,
    VpnClient,
    VpnServer,
    VpnSession,
)
from vpnmonitor.timeseries import floor_time

STEP = dt.timedelta(minutes=5)
FIRST_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
               "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne"]


def has_data():
    return VpnServer.objects.filter(name__startswith="demo-").exists()


def seed(*, now, options):
    rng = random.Random(options["seed"])
    servers = [
        VpnServer.objects.create(name="demo-eu-1", status_file="/var/run/openvpn/demo-eu-1.status",
                                 region="eu-central", network_name="office", enabled=False),
        VpnServer.objects.create(name="demo-us-1", status_file="/var/run/openvpn/demo-us-1.status",
                                 region="us-east", network_name="datacenter", enabled=False),
    ]
    count = max(1, options["clients"])
    names = [f"user-{FIRST_NAMES[i % len(FIRST_NAMES)]}{'' if i < len(FIRST_NAMES) else i}" for i in range(count)]
    clients = []
    for index, name in enumerate(names):
        server = servers[index % 2]
        clients.append(VpnClient.objects.create(
            server=server, common_name=name, first_seen=now - dt.timedelta(days=options["days"]),
            virtual_address=f"10.{8 + index % 2}.0.{10 + index}",
            real_address=f"203.0.113.{20 + index}:{41000 + index}",
        ))
        UserProfile.objects.get_or_create(common_name=name, defaults={
            "user_name": name.removeprefix("user-"), "email": f"{name.removeprefix('user-')}@example.com",
            "first_name": name.removeprefix("user-").title(), "user_group": rng.choice(["staff", "contractors"]),
        })
    heavy = {c.pk: rng.uniform(0.2, 3.0) for c in clients}  # each user's appetite
    start = floor_time(now - dt.timedelta(days=options["days"]), STEP)
    samples, polls, quarters = [], [], {}
    moment = start
    while moment <= now:
        hour = moment.hour + moment.minute / 60
        daylight = max(0.0, math.sin((hour - 6) / 12 * math.pi))  # office hours peak around 12:00 UTC
        per_server = {s.pk: [0, 0, 0] for s in servers}
        for client in clients:
            if rng.random() > 0.15 + 0.8 * daylight:
                continue
            received = int(heavy[client.pk] * rng.uniform(0.5, 1.5) * 2_000_000 * (0.1 + daylight))
            sent = int(received * rng.uniform(3, 12))
            samples.append(UsageSample(server=client.server, client=client, timestamp=moment,
                                       bytes_received=received, bytes_sent=sent, interval_seconds=STEP.seconds))
            totals = per_server[client.server_id]
            totals[0] += received
            totals[1] += sent
            totals[2] += 1
            client.total_bytes_received += received
            client.total_bytes_sent += sent
        for server in servers:
            rx, tx, active = per_server[server.pk]
            polls.append(PollRecord(server=server, timestamp=moment, active_connections=active,
                                    active_clients=active, bytes_received=rx, bytes_sent=tx))
            quarter = quarters.setdefault((server.pk, floor_time(moment, 900)), PollQuarter(
                server=server, bucket=floor_time(moment, 900)))
            quarter.bytes_received += rx
            quarter.bytes_sent += tx
            quarter.max_clients = max(quarter.max_clients, active)
            quarter.max_connections = max(quarter.max_connections, active)
            quarter.polls += 1
        moment += STEP
    services.store_samples(samples)
    PollRecord.objects.bulk_create(polls, batch_size=5000)
    PollQuarter.objects.bulk_create(quarters.values(), batch_size=5000)

    sessions = []
    for index, client in enumerate(clients):
        active = index % 3 != 2
        client.status = VpnClient.Status.ACTIVE if active else VpnClient.Status.DISCONNECTED
        client.connections = 1 if active else 0
        client.recv_rate_bps = rng.uniform(20_000, 400_000) if active else 0
        client.sent_rate_bps = client.recv_rate_bps * rng.uniform(3, 10) if active else 0
        client.last_seen = now if active else now - dt.timedelta(hours=rng.randint(2, 40))
        for day in range(min(options["days"], 5), 0, -1):
            began = now - dt.timedelta(days=day, hours=rng.randint(0, 8))
            sessions.append(_session(client, began, began + dt.timedelta(hours=rng.randint(1, 9)), rng, index))
        if active:
            sessions.append(_session(client, now - dt.timedelta(minutes=rng.randint(5, 300)), None, rng, index))
    VpnClient.objects.bulk_update(clients, ["status", "connections", "recv_rate_bps", "sent_rate_bps", "last_seen",
                                            "total_bytes_received", "total_bytes_sent"])
    VpnSession.objects.bulk_create(sessions)
    for index, client in enumerate(clients):
        Certificate.objects.create(
            server=client.server, file=f"{client.common_name}.crt", common_name=client.common_name,
            serial=f"{0xA000 + index:X}", not_before=now - dt.timedelta(days=300),
            not_after=now + dt.timedelta(days=rng.choice([-3, 12, 45, 200, 365, 700])), revoked=index == 4,
        )
    return f"2 servers, {len(clients)} clients, {len(samples)} samples, {len(sessions)} sessions"


def _session(client, began, ended, rng, index):
    received = rng.randint(10**6, 10**9)
    return VpnSession(
        server=client.server, client=client, common_name=client.common_name,
        connection_key=f"demo|{client.common_name}|{began.isoformat()}", openvpn_client_id=index,
        status=VpnSession.Status.ACTIVE if ended is None else VpnSession.Status.COMPLETED,
        started_at=began, ended_at=ended, disconnect_reason="" if ended is None else "connection closed",
        real_address=client.real_address, real_ip=client.real_address.split(":")[0],
        real_port=int(client.real_address.split(":")[1]), protocol="udp", virtual_address=client.virtual_address,
        cipher="AES-256-GCM", bytes_received=received, bytes_sent=received * 5, last_status_time=ended or began,
        os_type=rng.choice(["linux", "win", "mac", "ios", "android"]), created_at=began, updated_at=ended or began,
    )
