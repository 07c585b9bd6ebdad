"""Flow reports at scale: store_flows ingest rate, then list (with total_count) and stats latency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/flowbench python -m bench flowreports \\
        [--flows 1000000] [--days 7] [--subscribers 1000] [--repeat 30] [--reuse]

Generates N flows over the last D days (on PostgreSQL in SQL: INSERT ... SELECT from generate_series with
the indexes dropped and rebuilt, then the rollups rebuilt, a few minutes for 10M; --store-flows, and other
databases, go through store_flows and time it), VACUUM ANALYZEs, seals the closed hours as the beat task
would, then times requests through Django's test client (auth, filters, serializers and envelope
included): p50/p95 of the listing with filters, of stats over 7 days and in the default window (now - 7 d
to now, once at the real time and once with the clock at 12:30 UTC, its worst time of day), and of group_by.
--reuse keeps an existing dataset of the same size instead of generating it again. The dashboard pages that show
flows (the overview and the flows page) are timed first, signed in, through Django's test client; --dashboard-only
times nothing else. Targets (issue 23, 10M flows over 7 days): overview p95 < 300 ms, flows page p95 < 200 ms.

    python -m bench flowreports --collector-rate 50000 [--collector-seconds 30]

measures the collector end to end instead: a separate process offers NetFlow v5 (30 flows per
packet) over UDP at that fixed rate to a Collector whose sink is FlowSink (decode, attribution,
COPY and rollups), then reports what was received, stored and lost. Use its own database: the
flows it stores carry a fixed 2023 timestamp (the run starts by emptying the flow table and its rollups).
Like collect_flows it sets a 0.5 ms thread switch interval; it reports the kernel's count of datagrams lost
in the receive buffer next to the collector's own counts. --collector-sflow offers sFlow v5 instead: datagrams
of 7 flow samples (128-octet Ethernet/IPv4 headers sampled 1 in 1,024), one stored flow per sample, so the
rate is in samples/s.
"""

import argparse
import datetime as dt
import ipaddress
import itertools
import multiprocessing
import socket
import struct
import sys
import time
from unittest import mock

from bench.datasets import analyze, cpu_seconds, latency_ms, rng, stopwatch, utcnow

BATCH = 50_000
# The flows and every rollup, the seals included: each run starts as a fresh install would.
TRUNCATE = ("TRUNCATE flowreports_flowreport, flowreports_flowreporthourly, flowreports_flowreportdestinationdaily, "
            "flowreports_flowreportsourcedaily, flowreports_flowreportdestinationhourly, "
            "flowreports_flowreportsealedhour")


def _flows(count, days, subscribers, random, now):
    remotes = [str(ipaddress.IPv4Address(0x08080000 + i * 7919)) for i in range(5000)]
    protocols = [6] * 70 + [17] * 27 + [1] * 2 + [58]
    span = days * 86400
    for _ in range(count):
        inside = f"100.64.{(s := random.randrange(subscribers)) // 250}.{s % 250 + 1}"
        remote = remotes[min(int(random.paretovariate(1.2)) - 1, len(remotes) - 1)]
        uplink = random.random() < 0.5
        start = now - dt.timedelta(seconds=random.random() * span)
        packets = random.randint(1, 5000)
        protocol = random.choice(protocols)
        yield {
            "source_ip": inside if uplink else remote, "destination_ip": remote if uplink else inside,
            "source_port": random.randint(1024, 65535) if uplink else 443,
            "destination_port": 443 if uplink else random.randint(1024, 65535),
            "protocol": protocol, "packets": packets, "bytes": packets * random.randint(60, 1500),
            "start_time": start, "end_time": start + dt.timedelta(milliseconds=random.randint(1, 60_000)),
            "action": "drop" if random.random() < 0.02 else "allow",
        }


def generate(count, days, subscribers, seed=42):
    from flowreports.models import FlowReport
    from flowreports.services import delete_flows, store_flows
    from flowreports.subscribers import SubscriberTable

    delete_flows(FlowReport.objects.all())
    _prefixes(subscribers)
    table = SubscriberTable.load()
    random, now = rng(seed), utcnow()
    batch, stored, seconds = [], 0, 0.0
    flows = _flows(count, days, subscribers, random, now)
    while True:
        batch = list(itertools.islice(flows, BATCH))
        if not batch:
            break
        # Only store_flows is timed (attribution, row building, COPY), not the generator.
        with stopwatch() as timing:
            stored += store_flows(batch, exporter="bench", table=table, now=now).stored
        seconds += timing["seconds"]
        print(f"  {stored:,} flows stored", end="\r", flush=True)
    print()
    return stored, seconds


def _prefixes(subscribers):
    from flowreports.models import SubscriberPrefix

    SubscriberPrefix.objects.filter(description="bench").delete()
    SubscriberPrefix.objects.bulk_create([
        SubscriberPrefix(cidr=f"100.64.{s // 250}.{s % 250 + 1}/32", subscriber_id=f"0010197561{s:05d}",
                         description="bench")
        for s in range(subscribers)
    ])


# The distribution of _flows, drawn by PostgreSQL: each row's random numbers come from the inner SELECT.
_GENERATE_SQL = """
INSERT INTO flowreports_flowreport (subscriber_id, source_ip, destination_ip, source_port, destination_port,
    protocol, packets, bytes, start_time, end_time, direction, action, exporter, created_at)
SELECT '0010197561' || lpad(s::text, 5, '0'),
       CASE WHEN uplink THEN inside ELSE remote END, CASE WHEN uplink THEN remote ELSE inside END,
       CASE WHEN uplink THEN port ELSE 443 END, CASE WHEN uplink THEN 443 ELSE port END,
       CASE WHEN p < 0.70 THEN 6 WHEN p < 0.97 THEN 17 WHEN p < 0.99 THEN 1 ELSE 58 END,
       packets, packets * size, start_time, start_time + (1 + floor(random() * 60000)) * interval '1 ms',
       CASE WHEN uplink THEN 'uplink' ELSE 'downlink' END, CASE WHEN drop THEN 'drop' ELSE 'allow' END,
       'bench', %(now)s
FROM (
    SELECT s, ('100.64.' || s / 250 || '.' || s %% 250 + 1)::inet AS inside,
           '0.0.0.0'::inet + (134742016 + 7919 * least(floor(1 / power(1 - random(), 1 / 1.2)) - 1, 4999))::bigint
               AS remote,
           uplink, (1024 + floor(random() * 64512))::int AS port, random() AS p,
           (1 + floor(random() * 5000))::bigint AS packets, (60 + floor(random() * 1441))::bigint AS size,
           %(first)s + random() * %(span)s * interval '1 s' AS start_time, random() < 0.02 AS drop
    FROM (SELECT floor(random() * %(subscribers)s)::int AS s, random() < 0.5 AS uplink
          FROM generate_series(1, %(rows)s)) AS drawn
) AS flow
ORDER BY flow.start_time
"""


def generate_sql(count, days, subscribers, seed=0.42):
    """Fill the table with count flows drawn in SQL (the secondary indexes are dropped first and rebuilt after,
    the rollups rebuilt from the table): minutes for 10M flows, where store_flows takes an hour."""
    from django.db import connection

    from flowreports import rollups
    from flowreports.models import FlowReport
    from vpnmonitor import partitions

    with connection.cursor() as cursor:
        cursor.execute(TRUNCATE)
    _prefixes(subscribers)
    now = utcnow()
    # Partitioned by day (PostgreSQL, flowreports migration 0011): every day of the span needs its partition.
    partitions.ensure(FlowReport, set(range(partitions.day_number(now - dt.timedelta(days=days)),
                                            partitions.day_number(now) + 1)))
    indexes = FlowReport._meta.indexes
    with connection.schema_editor() as editor:
        for index in indexes:
            editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(index.name)}")
    done = 0
    # In chunks of up to 1M flows, each its share of the span, in time order: the rows lie in the table in
    # about the order a collector writes them (random order made every time range touch every page).
    chunks = -(-count // 1_000_000)
    span = days * 86400
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        for chunk in range(chunks):
            rows = min(1_000_000, count - done)
            first = now - dt.timedelta(seconds=span) + dt.timedelta(seconds=span * chunk / chunks)
            cursor.execute(_GENERATE_SQL, {"now": now, "first": first, "span": span / chunks,
                                           "subscribers": subscribers, "rows": rows})
            done += rows
            print(f"  {done:,} flows generated", end="\r", flush=True)
    print()
    with connection.schema_editor() as editor:
        for index in indexes:
            editor.add_index(FlowReport, index)
    rollups.rebuild()
    return done


def _subscriber_flows(count, subscribers, seed):
    """count flows (source, destination, source port, destination port, protocol, packets, octets), as
    subscribers' traffic looks to a collector.

    Half the flows are uplink (a subscriber's address and ephemeral port to a remote's port 443), half
    downlink (back); subscribers are drawn uniformly, remotes from 5,000 with the Pareto skew of _flows.
    So attribution, the per-pair cache and the endpoint rollups see many distinct addresses and ports.
    """
    random = rng(seed)
    remotes = [ipaddress.IPv4Address(0x08080000 + i * 7919).packed for i in range(5000)]
    for _ in range(count):
        s = random.randrange(subscribers)
        inside = ipaddress.IPv4Address(f"100.64.{s // 250}.{s % 250 + 1}").packed
        remote = remotes[min(int(random.paretovariate(1.2)) - 1, len(remotes) - 1)]
        ephemeral = random.randint(1024, 65535)
        if random.random() < 0.5:
            source, destination, source_port, destination_port = inside, remote, ephemeral, 443
        else:
            source, destination, source_port, destination_port = remote, inside, 443, ephemeral
        packets_count = random.randint(1, 5000)
        octets = packets_count * random.randint(60, 1500)
        yield (source, destination, source_port, destination_port, 6 if random.random() < 0.7 else 17,
               packets_count, octets)


def subscriber_traffic_packets(count, subscribers, seed=5):
    """count NetFlow v5 packets of 30 flows each (_subscriber_flows)."""
    from flowreports.collector.bench_decode import EXPORT_SECS

    header = struct.Struct("!HHIIIIBBH")
    record = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")
    flows = _subscriber_flows(count * 30, subscribers, seed)
    packets = []
    for packet_index in range(count):
        body = []
        for _ in range(30):
            source, destination, source_port, destination_port, protocol, packets_count, octets = next(flows)
            body.append(record.pack(
                source, destination, b"\0" * 4, 1, 2, packets_count, octets,
                3_500_000, 3_590_000, source_port, destination_port, 0, 0x1B, protocol,
                0, 0, 0, 24, 24, 0,
            ))
        packets.append(header.pack(5, 30, 3_600_000, EXPORT_SECS, 0, packet_index * 30, 0, 0, 0) + b"".join(body))
    return packets


# A sampling exporter's IPFIX: an options template and record giving the exporter's rate (samplingPacketInterval
# 1, samplingPacketSpace rate - 1, as routers send it), and a data template, ahead of 30 flows in every packet.
_IPFIX_OPTIONS_TEMPLATE = struct.pack("!HHHHHHHHHHH", 3, 22, 258, 3, 1, 149, 4, 305, 4, 306, 4)
_IPFIX_DATA_FIELDS = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8))
_IPFIX_DATA_TEMPLATE = struct.pack("!HHHH", 2, 8 + 4 * len(_IPFIX_DATA_FIELDS), 256, len(_IPFIX_DATA_FIELDS)) + (
    b"".join(struct.pack("!HH", *field) for field in _IPFIX_DATA_FIELDS))
_IPFIX_RECORD = struct.Struct("!4s4sHHBQQQQ")


def sampled_traffic_packets(count, subscribers, rate, seed=5):
    """count IPFIX packets of 30 flows each (_subscriber_flows) from an exporter that samples 1 in rate packets."""
    from flowreports.collector.bench_decode import EXPORT_SECS

    options = _IPFIX_OPTIONS_TEMPLATE + struct.pack("!HHIII", 258, 16, 1, 1, rate - 1)
    start_ms = (EXPORT_SECS - 100) * 1000
    flows = _subscriber_flows(count * 30, subscribers, seed)
    packets = []
    for packet_index in range(count):
        data = b"".join(_IPFIX_RECORD.pack(*next(flows), start_ms, start_ms + 90_000) for _ in range(30))
        body = options + _IPFIX_DATA_TEMPLATE + struct.pack("!HH", 256, 4 + len(data)) + data
        packets.append(struct.pack("!HHIII", 10, 16 + len(body), EXPORT_SECS, packet_index * 30, 1) + body)
    return packets


SFLOW_SAMPLES_PER_DATAGRAM = 7
SFLOW_SAMPLING_RATE = 1024


def subscriber_sflow_datagrams(count, subscribers, seed=5):
    """count sFlow v5 datagrams of 7 flow samples each (_subscriber_flows) as packet samples, 1 in 1,024.

    Each sample holds the first 128 octets of an Ethernet/IPv4 TCP or UDP frame the size of its flow's mean
    packet (132 to 1,518 octets; about 1,400 octets a datagram, as agents send them).
    """
    # Ethernet (MACs, type), IPv4 (version/length, tos, total length, id, fragment, ttl, protocol, checksum,
    # addresses), then the transport header's ports; zero-padded to the 128 octets an agent copies.
    frame = struct.Struct("!6s6sHBBHHHBBH4s4sHH")
    macs = (b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02")
    header_length = 128
    flows = _subscriber_flows(count * SFLOW_SAMPLES_PER_DATAGRAM, subscribers, seed)
    datagrams = []
    for datagram_index in range(count):
        samples = []
        for sample_index in range(SFLOW_SAMPLES_PER_DATAGRAM):
            source, destination, source_port, destination_port, protocol, packets_count, octets = next(flows)
            frame_length = min(max(octets // packets_count + 18, header_length + 4), 1518)
            header = frame.pack(*macs, 0x0800, 0x45, 0, frame_length - 18, 1, 0, 64, protocol, 0, source,
                                destination, source_port, destination_port).ljust(header_length, b"\0")
            sequence = datagram_index * SFLOW_SAMPLES_PER_DATAGRAM + sample_index
            record = struct.pack("!IIIIII", 1, 16 + header_length, 1, frame_length, 4, header_length) + header
            body = struct.pack("!8I", sequence, 1, SFLOW_SAMPLING_RATE, sequence * SFLOW_SAMPLING_RATE, 0, 1, 2,
                               1) + record
            samples.append(struct.pack("!II", 1, len(body)) + body)
        datagrams.append(struct.pack("!II4sIIII", 5, 1, b"\xc0\0\x02\x01", 0, datagram_index, 3_600_000,
                                     len(samples)) + b"".join(samples))
    return datagrams


def _packets_per_second(rate, flows_per_packet=30):
    """Packets of flows_per_packet flows a second that offer at least rate flows/s."""
    return max(1, -(-rate // flows_per_packet))


def _offer(address, rate, seconds, subscribers, window, sampling=0, sflow=False):
    """Child process: send v5 packets of 30 flows (IPFIX from a sampling exporter with `sampling`; sflow:
    datagrams of 7 samples) to address at `rate` flows/s for `seconds`.

    Puts (first send, last send) on the window queue as time.perf_counter() values (CLOCK_MONOTONIC, the
    same clock in every process), so the run is timed from the first datagram rather than the process start.
    """
    from flowreports.collector.bench_decode import v5_packets

    per_second = _packets_per_second(rate, SFLOW_SAMPLES_PER_DATAGRAM if sflow else 30)
    if sflow:
        packets = subscriber_sflow_datagrams(per_second, subscribers or 1)
    elif sampling:
        packets = sampled_traffic_packets(per_second, subscribers or 1, sampling)
    elif subscribers:
        packets = subscriber_traffic_packets(per_second, subscribers)
    else:
        packets, _ = v5_packets(per_second)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent, start = 0, time.perf_counter()
    total = per_second * seconds
    while sent < total:
        # Paced in slices of 1 ms, so the offered rate is steady rather than one burst per second.
        due = int((time.perf_counter() - start) * per_second) + 1
        while sent < min(due, total):
            sock.sendto(packets[sent % per_second], address)
            sent += 1
        time.sleep(0.001)
    window.put((start, time.perf_counter()))
    sock.close()


def _seal_offered_hour(subscribers):
    """Seal the hour the offered flows begin in (they all carry one time), so every flow arrives late."""
    from flowreports import rollups
    from flowreports.collector.decode import FlowDecoder
    from flowreports.models import FlowReportSealedHour

    packet = subscriber_traffic_packets(1, subscribers or 1)[0]
    (record, *_) = FlowDecoder().decode(packet, "127.0.0.1")
    hour = rollups.floor_hour(dt.datetime.fromtimestamp(record.start_us / 1e6, dt.UTC))
    FlowReportSealedHour.objects.create(hour=hour)
    return hour


def collector_run(rate, seconds, subscribers, batch_size=None, late=False, sampling=0, sflow=False):
    from django.db import connection

    from flowreports.collector.server import Collector
    from flowreports.management.commands.collect_flows import SWITCH_INTERVAL
    from flowreports.models import FlowReport
    from flowreports.services import FlowSink, delete_flows

    if connection.vendor == "postgresql":
        # Every run starts from the same empty table (a DELETE would leave the last run's rows as dead tuples).
        with connection.cursor() as cursor:
            cursor.execute(TRUNCATE)
    else:
        delete_flows(FlowReport.objects.all())
    if subscribers:
        _prefixes(subscribers)
    sealed = _seal_offered_hour(subscribers) if late else None
    sys.setswitchinterval(SWITCH_INTERVAL)  # as collect_flows does
    sink = FlowSink()
    commits = []  # (time, flows) of every committed batch

    def timed_sink(batch):
        result = sink(batch)
        commits.append((time.perf_counter(), len(batch)))  # list.append is atomic across the writer threads
        return result

    options = {"batch_size": batch_size} if batch_size else {}
    collector = Collector(timed_sink, listen=("127.0.0.1", 0), writers=sink.writers, **options).start()
    window = multiprocessing.Queue()
    sender = multiprocessing.Process(target=_offer,
                                     args=(collector.address, rate, seconds, subscribers, window, sampling,
                                           sflow))
    own_cpu, server_cpu = cpu_seconds()
    sender.start()
    # Sampled ten times a second: the most flows received and not yet committed, and the most bytes of
    # datagrams waiting in the socket's kernel buffer (not yet received at all).
    backlog = kernel_queue = 0
    port = collector.address[1]
    while sender.is_alive():
        stats = collector.stats()
        backlog = max(backlog, stats["flows_received"] - stats["flows_stored"])
        kernel_queue = max(kernel_queue, _udp_receive_queue(port) or 0)
        sender.join(0.1)
    first_send, last_send = window.get()
    collector.stop(timeout=300)
    drained = time.perf_counter()
    own_cpu_after, server_cpu_after = cpu_seconds()
    sink.close()
    stats = collector.stats()
    per_packet = SFLOW_SAMPLES_PER_DATAGRAM if sflow else 30
    offered = _packets_per_second(rate, per_packet) * per_packet * seconds
    in_table = FlowReport.objects.count()
    rates = sorted(FlowReport.objects.order_by().values_list("sampling_rate", flat=True).distinct())
    lost = offered - in_table
    traffic = (f"{subscribers:,} subscribers' traffic with 5,000 remotes" if subscribers
               else "30 fixed flows repeated")
    return [
        ("collector, batches", f"{collector.batch_size:,} flows, {collector.writers} writer(s)"),
        *([("collector, late flows", f"every one: their hour ({sealed:%Y-%m-%d %H}:00) was sealed before the run")]
          if late else []),
        ("collector, offered", f"{offered:,} flows at {rate:,} flows/s for {seconds} s ("
                               + (f"sFlow v5 flow samples, 7 per datagram, 1 in {SFLOW_SAMPLING_RATE:,}; " if sflow
                                  else f"IPFIX sampled 1 in {sampling:,}, 30 per packet; " if sampling
                                  else "NetFlow v5, 30 per packet; ") + f"{traffic})"),
        ("collector, sampling rates stored", ", ".join(f"{value:,}" for value in rates) or "none"),
        ("collector, attributed to a subscriber", f"{stats['flows_stored'] - sink.unattributed:,}"),
        ("collector, received / stored / dropped",
         f"{stats['flows_received']:,} / {stats['flows_stored']:,} / {stats['flows_dropped']:,}"),
        ("collector, packets lost in the receive buffer (kernel count)",
         f"{stats['packets_lost']:,} of {offered // per_packet:,} ({stats['receive_buffer'] // 2**20} MiB buffer)"),
        ("collector, in the table", f"{in_table:,} ({lost:,} lost, {lost / offered:.2%})"),
        ("collector, CPU per stored flow: collector process / PostgreSQL (all its processes)",
         _per_flow(own_cpu_after - own_cpu, stats["flows_stored"]) + " / "
         + (_per_flow(server_cpu_after - server_cpu, stats["flows_stored"]) if server_cpu is not None else "n/a")),
        ("collector, offered rate (first to last datagram)",
         f"{offered / (last_send - first_send):,.0f} flows/s over {last_send - first_send:.1f} s"),
        ("collector, sustained store rate (flows committed from 5 s in to the last datagram)",
         _steady_rate(sorted(commits), first_send + 5, last_send)),
        ("collector, most flows waiting (received, not yet committed)",
         f"{backlog:,} ({backlog / rate:.1f} s of traffic)"),
        ("collector, most datagrams waiting in the kernel (receive queue)",
         f"{kernel_queue / 2**20:.2f} MiB of the {stats['receive_buffer'] / 2**20:.0f} MiB buffer"),
        ("collector, overall store rate (first datagram to last flow committed)",
         f"{in_table / (drained - first_send):,.0f} flows/s, the last committed {drained - last_send:.1f} s "
         f"after the last datagram ({connection.vendor})"),
    ]


def _udp_receive_queue(port):
    """Bytes queued on the 127.0.0.1 UDP socket bound to port, from /proc/net/udp (Linux), else None."""
    try:
        with open("/proc/net/udp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] == f"0100007F:{port:04X}":
                    return int(fields[4].split(":")[1], 16)
    except OSError:
        return None
    return None


def _steady_rate(commits, since, until):
    """Flows/s committed between the first and the last commit inside [since, until].

    The flows counted are those of the commits after the first one: exactly what was stored in that time.
    """
    inside = [commit for commit in commits if since <= commit[0] <= until]
    if len(inside) < 2:
        return "n/a (run too short)"
    flows = sum(count for _, count in inside[1:])
    seconds = inside[-1][0] - inside[0][0]
    return f"{flows / seconds:,.0f} flows/s ({flows:,} flows in {len(inside) - 1} commits over {seconds:.1f} s)"


def _per_flow(seconds, flows):
    return f"{seconds / max(flows, 1) * 1e6:.1f} us"


def run(argv):
    parser = argparse.ArgumentParser(prog="python -m bench flowreports")
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset of the same size")
    parser.add_argument("--store-flows", action="store_true",
                        help="on PostgreSQL too, generate through store_flows (and time it) instead of in SQL")
    parser.add_argument("--collector-rate", type=int, default=0,
                        help="measure the UDP collector end to end at this offered rate (flows/s) instead")
    parser.add_argument("--collector-seconds", type=int, default=30)
    parser.add_argument("--collector-batch-size", type=int, default=None,
                        help="flows per batch (default: collect_flows' default)")
    parser.add_argument("--collector-late", action="store_true",
                        help="seal the offered flows' hour first, so every flow is late (an exporter whose clock is "
                             "behind): each batch also counts them into the hourly destination rollup")
    parser.add_argument("--collector-sflow", action="store_true",
                        help="offer sFlow v5 flow samples (7 per datagram) instead of NetFlow v5; the rate is in "
                             "samples/s")
    parser.add_argument("--collector-fixed-flows", action="store_true",
                        help="offer the same 30 unattributed flows over and over instead of --subscribers' traffic")
    parser.add_argument("--collector-sampling", type=int, default=0, metavar="RATE",
                        help="offer IPFIX from an exporter that samples 1 in RATE packets (its sampling options in "
                             "every packet), so every flow is scaled by RATE, instead of unsampled NetFlow v5")
    parser.add_argument("--dashboard-only", action="store_true",
                        help="time only the dashboard pages that show flows (the overview and the flows page)")
    parser.add_argument("--raw", action="store_true",
                        help="answer total_count and stats from the raw table only, as before the rollups")
    args = parser.parse_args(argv)

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from rest_framework.test import APIClient

    from flowreports import rollups
    from flowreports.models import FlowReport
    from vpnmonitor.api.throttling import PrincipalRateThrottle

    call_command("migrate", verbosity=0)
    if args.collector_sflow and (args.collector_late or args.collector_fixed_flows or args.collector_sampling):
        parser.error("--collector-sflow takes none of --collector-late (samples are timed at arrival), "
                     "--collector-fixed-flows and --collector-sampling (every sample carries its own rate)")
    if args.collector_rate:
        rows = collector_run(args.collector_rate, args.collector_seconds,
                             0 if args.collector_fixed_flows else args.subscribers, args.collector_batch_size,
                             late=args.collector_late, sampling=args.collector_sampling,
                             sflow=args.collector_sflow)
        for name, value in rows:
            print(f"{name}: {value}")
        return rows
    rows = []
    existing = FlowReport.objects.count() if args.reuse else -1
    if existing == args.flows:
        print(f"reusing {existing:,} flows")
    else:
        print(f"generating {args.flows:,} flows over {args.days} days for {args.subscribers} subscribers")
        if connection.vendor == "postgresql" and not args.store_flows:
            with stopwatch() as timing:
                generate_sql(args.flows, args.days, args.subscribers)
            rows.append(("generated in SQL (INSERT ... SELECT, then indexes and rollups built)",
                         f"{args.flows:,} flows in {timing['seconds']:.0f} s"))
        else:
            stored, seconds = generate(args.flows, args.days, args.subscribers)
            rows.append(("ingest through store_flows (attribution + " +
                         ("COPY" if connection.vendor == "postgresql" else "bulk_create") + ")",
                         f"{stored / seconds:,.0f} flows/s ({stored:,} in {seconds:.1f} s)"))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE flowreports_flowreport")
        analyze()
    # What the beat task does every 10 minutes: count the closed hours (all of them, after a fresh dataset).
    with stopwatch() as timing:
        sealed = rollups.seal_hours()
    if sealed:
        print(f"sealed {sealed} hours in {timing['seconds']:.1f} s")
        rows.append(("hourly destination rollup: hours sealed", f"{sealed} in {timing['seconds']:.1f} s"))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE flowreports_flowreportdestinationhourly")
    rows.insert(0, ("dataset", f"{args.flows:,} flows over {args.days} days, {args.subscribers} subscribers"))

    if args.raw:
        from flowreports.filtersets import FlowReportFilterSet

        FlowReportFilterSet.rollup_dimensions = lambda self: None
        rows.insert(1, ("answered from", "the raw table only (--raw: no rollups)"))
    PrincipalRateThrottle.allow_request = lambda self, request, view: True
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})
    client = APIClient(SERVER_NAME="localhost")
    client.force_authenticate(user)
    subscriber = "0010197561" + "00042"
    today = utcnow().date()
    week = f"start={(today - dt.timedelta(days=6)).isoformat()}&end={today.isoformat()}"
    cases = [
        ("list, default window (7 d), page 1", "/api/v1/flow-reports"),
        ("list, subscriber_id, 7 d", f"/api/v1/flow-reports?subscriber_id={subscriber}&{week}"),
        ("list, protocol=17&direction=uplink&action=allow, 7 d",
         f"/api/v1/flow-reports?protocol=17&direction=uplink&action=allow&{week}"),
        ("list, destination=8.8.0.0:443, 7 d", f"/api/v1/flow-reports?destination=8.8.0.0:443&{week}"),
        ("list, destination=8.8.0.0:443, default window (partial days)",
         "/api/v1/flow-reports?destination=8.8.0.0:443"),
        ("list, destination=8.8.0.0, 7 d", f"/api/v1/flow-reports?destination=8.8.0.0&{week}"),
        ("list, destination=:443&protocol=6, 7 d", f"/api/v1/flow-reports?destination=:443&protocol=6&{week}"),
        # A subscriber's address and one of its ephemeral ports: counted from the raw table.
        ("list, destination=100.64.0.43:40000, 7 d", f"/api/v1/flow-reports?destination=100.64.0.43:40000&{week}"),
        # Sources are not rolled up: the heavy remote as a source is an exact count of its raw flows.
        ("list, source=8.8.0.0:443, 7 d", f"/api/v1/flow-reports?source=8.8.0.0:443&{week}"),
        # The 101st remote: about one flow in 20,000 (8.8.0.0 is in 28% of them).
        ("list, destination=8.20.21.92 (rare), 7 d", f"/api/v1/flow-reports?destination=8.20.21.92&{week}"),
        ("list, one day, page 200", f"/api/v1/flow-reports?start={today.isoformat()}&end={today.isoformat()}"
                                    "&page=200&per_page=100"),
        ("stats, 7 d", f"/api/v1/flow-reports/stats?{week}"),
        ("stats, default window (partial days)", "/api/v1/flow-reports/stats"),
        ("stats, protocol=6, default window", "/api/v1/flow-reports/stats?protocol=6"),
        ("stats, destination=8.8.0.0:443, default window", "/api/v1/flow-reports/stats?destination=8.8.0.0:443"),
        ("stats, destination=:443, default window", "/api/v1/flow-reports/stats?destination=:443"),
        ("stats, subscriber_id, 7 d", f"/api/v1/flow-reports/stats?subscriber_id={subscriber}&{week}"),
        # Sources have no rollup that keeps destinations: the heavy remote as a source is read raw.
        ("stats, source=8.8.0.0, 7 d", f"/api/v1/flow-reports/stats?source=8.8.0.0&{week}"),
        ("group_by=day, 7 d", f"/api/v1/flow-reports?group_by=day&{week}"),
        ("group_by=subscriber, 7 d, page 1", f"/api/v1/flow-reports?group_by=subscriber&{week}"),
    ]
    rows += dashboard_pages(user, today, subscriber, args.repeat)
    if args.dashboard_only:
        return rows
    for name, url in cases:
        rows.append(_timed(client, name, url, args.repeat))
    # The default window's first day is partial, so its cost depends on the time of day. It is worst at
    # 12:30: 11 whole hours of that day from the hourly rollups and the half hour before them from raw flows.
    # The clock is set to the first 12:30 UTC after the newest flow, so the window's whole first day has flows.
    newest = FlowReport.objects.order_by("-start_time").values_list("start_time", flat=True).first()
    clock = newest.replace(hour=12, minute=30, second=0, microsecond=0)
    if clock < newest:
        clock += dt.timedelta(days=1)
    with mock.patch.object(timezone, "now", lambda: clock):
        for name, query in (("stats", ""), ("stats, protocol=6", "protocol=6"),
                            ("stats, destination=8.8.0.0:443", "destination=8.8.0.0:443"),
                            ("stats, destination=:443", "destination=:443")):
            rows.append(_timed(client, f"{name}, default window from 12:30 UTC", f"/api/v1/flow-reports/stats?{query}",
                               args.repeat))
        rows.append(_timed(client, "list, destination=:443, default window from 12:30 UTC",
                           "/api/v1/flow-reports?destination=:443", args.repeat))
    return rows


def dashboard_pages(user, today, subscriber, repeat):
    """The HTML pages that show flows, signed in as an operator: each renders its template in full.

    The overview also draws the VPN and proxy panels (from their own tables, small here unless a proxylogs
    run filled them); the flows page shows the stats, the total and one page of 50 flows.
    """
    from django.test import Client

    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    return [_timed(client, name, url, repeat) for name, url in (
        ("dashboard overview (flows panel: default window)", "/"),
        ("dashboard flows page, default window, page 1", "/dashboard/flows/"),
        ("dashboard flows page, protocol=17, page 1", "/dashboard/flows/?protocol=17"),
        ("dashboard flows page, destination=8.8.0.0:443, page 1", "/dashboard/flows/?destination=8.8.0.0:443"),
        ("dashboard flows page, subscriber_id, page 1", f"/dashboard/flows/?subscriber_id={subscriber}"),
        ("dashboard flows page, one day, page 200",
         f"/dashboard/flows/?start={today.isoformat()}&end={today.isoformat()}&page=200"),
    )]


def _timed(client, name, url, repeat):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    p50, p95 = latency_ms(lambda: client.get(url), repeat=repeat)
    print(f"{name}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    return name, f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"
