"""Captures of real exporters (another collector's public test data) replayed to collect_flows over loopback.

Each replay follows the order ../shared/fixtures/real/SOURCES.md gives; the stored flows, scaled packets and
scaled bytes must equal the facts written there. Where nfdump applies the same sampling rate, its nfcapd
receives the same replay in the same test and must store the same totals.
"""

import json
import os
import socket
import struct
import subprocess
import tempfile
from collections import Counter
from datetime import UTC, datetime

import pytest

from flowreports.models import ExporterSampling, FlowReport
from flowreports.tests.test_collect_flows import RunningCommand
from flowreports.tests.test_collector_integration import _binary, _free_udp_port, _stop, _wait_for
from vpnmonitor.testing.real import real_fixture

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
URL = "/api/v1/flow-reports"


def udp_payloads(name):
    """The UDP payloads of a pcap of Ethernet/IPv4/UDP frames (classic pcap, either byte order), in order."""
    data = real_fixture(f"flows/akvorado/{name}.pcap").read_bytes()
    (magic,) = struct.unpack("<I", data[:4])
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    offset, payloads = 24, []
    while offset + 16 <= len(data):
        _seconds, _fraction, captured, _length = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        assert struct.unpack_from("!H", frame, 12)[0] == 0x0800 and frame[23] == 17, f"{name}: not IPv4/UDP"
        ip_header = (frame[14] & 0x0F) * 4
        (udp_length,) = struct.unpack_from("!H", frame, 14 + ip_header + 4)
        payloads.append(frame[14 + ip_header + 8 : 14 + ip_header + udp_length])
    return payloads


def replay(names):
    return [payload for name in names for payload in udp_payloads(name)]


def send(port, payloads):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for payload in payloads:
            sender.sendto(payload, ("127.0.0.1", port))


def collect(payloads, garbage=()):
    """Run collect_flows, send the replay (then the garbage datagrams), stop it; its output."""
    with RunningCommand(seconds=2.0) as command:
        send(command.port, payloads)
        send(command.port, garbage)
    return command.out.getvalue()


def nfcapd_flows(payloads, workdir, sampling=None):
    """nfcapd receives the same datagrams; the flow records nfdump then reads back."""
    capture = os.path.join(workdir, "nfcapd")
    os.mkdir(capture)
    port = _free_udp_port()
    log_path = os.path.join(workdir, "nfcapd.log")
    command = [_binary("nfcapd"), "-w", capture, "-b", "127.0.0.1", "-p", str(port), "-t", "3600"]
    if sampling is not None:
        command += ["-s", str(sampling)]
    with open(log_path, "wb") as log:
        nfcapd = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _wait_for(lambda: b"Startup" in open(log_path, "rb").read(), 10)
        send(port, payloads)
        # nfcapd writes its file when it stops; let the datagrams arrive first.
        _wait_for(lambda: False, 0.5)
    finally:
        _stop(nfcapd)
    output = subprocess.run([_binary("nfdump"), "-R", capture, "-o", "json"], capture_output=True, check=True,
                            timeout=15).stdout.decode()
    if "No matching flows" in output:
        return []
    return [record for record in json.loads(output) if record.get("type") == "FLOW"]


def nfcapd_totals(payloads, workdir, sampling=None):
    """(flows, packets, bytes) of nfcapd's records of the same datagrams."""
    flows = nfcapd_flows(payloads, workdir, sampling)
    return len(flows), sum(r["in_packets"] for r in flows), sum(r["in_bytes"] for r in flows)


def stored():
    rows = list(FlowReport.objects.all())
    return len(rows), sum(r.packets for r in rows), sum(r.bytes for r in rows)


@pytest.fixture(autouse=True)
def _require_nfdump():
    if _binary("nfcapd") is None or _binary("nfdump") is None:
        message = "nfdump is not installed (Debian: nfdump)"
        if os.environ.get("VPNMONITOR_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)


# How nfdump 1.7's nfcapd compares on the same replay:
SAME = "the same flows at the same rate"
UNSCALED = "the same flows, not scaled"  # it ignores that rate: its counters are the raw ones
BIFLOWS = "one record per biflow, with the reverse counters as out_packets/out_bytes"
NOTHING = "no flows"
EMPTY = "an empty record: no address, protocol or counter"

# (replay in order, stored flows, packets, bytes, the rate each flow carries, what nfdump stores)
FACTS = {
    "netflow v5, unsampled": (["nfv5"], 29, 78, 88_345, 1, SAME),
    "v9 template then data": (["template", "data"], 4, 4, 5_848, 1, SAME),
    # nfcapd drops data that precedes its template; RFC 3954 lets a collector hold it, as ours does.
    "v9 data then template": (["data", "template"], 4, 4, 5_848, 1, NOTHING),
    "v9 sampler options record": (["options-template", "options-data", "template", "data"],
                                  4, 120_000, 175_440_000, 30_000, SAME),
    # nfdump ignores samplingInterval in data records.
    "v9 per-record sampling interval": (["samplingrate-template", "samplingrate-data"], 6, 12_288, 7_659_520, 2048,
                                        UNSCALED),
    # nfdump ignores IPFIX samplingPacketInterval/Space options.
    "ipfix sampling options, dual-stack template": (["physicalinterfaces"], 8, 29_000, 31_111_000, 1000, UNSCALED),
    # nfdump does not decode dataLinkFrameSection records.
    "ipfix packet-sampling record": (["datalink-template", "datalink-data"], 1, 1, 96, 1, EMPTY),
    "ipfix rfc 5103 biflows": (["ipfixprobe-templates", "ipfixprobe-data"], 6, 60, 25_942, 1, BIFLOWS),
    # NAT events carry no counters; nfdump keeps them as NAT event records, not flows.
    "v9 nat events": (["nat"], 9, 0, 0, 1, NOTHING),
}


@pytest.mark.parametrize("case", list(FACTS))
def test_it_stores_the_true_volumes_of_each_real_export(case, viewer_client):
    names, flows, packets, octets, rate, nfdump = FACTS[case]
    payloads = replay(names)
    # Every datagram of the replay cut short, and cut by one byte: counted as malformed, nothing stored of them.
    truncated = [payload[: len(payload) // 2] for payload in payloads] + [payload[:-1] for payload in payloads]
    output = collect(payloads, truncated)

    assert stored() == (flows, packets, octets)
    assert set(FlowReport.objects.values_list("sampling_rate", flat=True)) == {rate}
    assert f"received {flows} flows in {len(payloads) + len(truncated)} packets, stored {flows} " in output
    assert f"malformed packets {len(truncated)}," in output
    day = FlowReport.objects.earliest("start_time").start_time.date().isoformat()
    items = viewer_client.get(f"{URL}?start={day}&end={day}&per_page=100").json()["result"]["items"]
    assert [item["sampling_rate"] for item in items] == [rate] * flows
    assert sum(item["bytes"] for item in items) == octets
    with tempfile.TemporaryDirectory() as workdir:
        theirs = nfcapd_flows(payloads, workdir)
    totals = (len(theirs), sum(r.get("in_packets", 0) for r in theirs), sum(r.get("in_bytes", 0) for r in theirs))
    if nfdump == SAME:
        assert totals == (flows, packets, octets)
    elif nfdump == UNSCALED:
        raw = [(r.packets // r.sampling_rate, r.bytes // r.sampling_rate) for r in FlowReport.objects.all()]
        assert totals == (flows, sum(p for p, _ in raw), sum(b for _, b in raw))
    elif nfdump == BIFLOWS:
        reverse = [r for r in theirs if r.get("out_packets")]
        assert (len(theirs) + len(reverse), totals[1] + sum(r["out_packets"] for r in reverse),
                totals[2] + sum(r["out_bytes"] for r in reverse)) == (flows, packets, octets)
    elif nfdump == EMPTY:
        assert totals == (1, 0, 0)
        assert not {"src4_addr", "src6_addr", "proto"} & set(theirs[0])
    else:
        assert totals == (0, 0, 0)


def test_it_reads_the_address_the_frame_of_a_packet_sampling_record_holds():
    collect(replay(["datalink-template", "datalink-data"]))
    [flow] = FlowReport.objects.all()
    assert (flow.source_ip, flow.destination_ip, flow.protocol, flow.bytes, flow.packets) == (
        "51.51.51.51", "52.52.52.52", 17, 96, 1)
    # The record has no time of its own: it is timed by its export (2023-07-30 14:50:16 UTC).
    assert flow.start_time == flow.end_time == datetime(2023, 7, 30, 14, 50, 16, tzinfo=UTC)


def test_it_stores_both_directions_of_each_biflow():
    collect(replay(["ipfixprobe-templates", "ipfixprobe-data"]))
    flows = {(f.source_ip, f.destination_ip, f.source_port, f.destination_port): (f.packets, f.bytes)
             for f in FlowReport.objects.all()}
    # The SMTP session: 10.10.1.4:1470 -> 74.53.140.153:25 and its reverse direction, ports swapped.
    assert flows[("10.10.1.4", "74.53.140.153", 1470, 25)] == (28, 21_673)
    assert flows[("74.53.140.153", "10.10.1.4", 25, 1470)] == (25, 1_546)
    # The DNS query and its answer.
    assert flows[("10.10.1.4", "10.10.1.1", 56166, 53)] == (1, 62)
    assert flows[("10.10.1.1", "10.10.1.4", 53, 56166)] == (1, 128)
    assert len(flows) == 6


def test_it_times_nat_events_by_their_observation_time():
    collect(replay(["nat"]))
    times = sorted(FlowReport.objects.values_list("start_time", flat=True))
    assert times[0] == datetime(2025, 6, 4, 15, 9, 0, 450_000, tzinfo=UTC)
    assert times[-1] == datetime(2025, 6, 4, 15, 9, 1, 235_000, tzinfo=UTC)
    assert all(flow.start_time == flow.end_time for flow in FlowReport.objects.all())


def test_it_scales_data_that_arrives_before_its_exporters_sampling_options():
    output = collect(replay(["template", "data", "options-template", "options-data"]))
    assert stored() == (4, 120_000, 175_440_000)
    assert "flows held for sampling options 4 (0 then at the default rate)" in output


def test_it_scales_an_exporter_that_sends_no_sampling_information_by_the_rate_set_in_admin(tmp_path):
    ExporterSampling.objects.create(exporter="127.0.0.1", sampling_rate=100)
    payloads = replay(["template", "data"])
    output = collect(payloads)
    assert stored() == (4, 400, 584_800)
    assert set(FlowReport.objects.values_list("sampling_rate", flat=True)) == {100}
    assert "flows held for sampling options 4 (4 then at the default rate)" in output
    # nfcapd's -s sets the same default rate for exporters that announce none.
    assert nfcapd_totals(payloads, str(tmp_path), sampling=100) == (4, 400, 584_800)


def test_a_rate_the_exporter_sends_wins_over_the_rate_set_in_admin():
    ExporterSampling.objects.create(exporter="127.0.0.1", observation_domain=0, sampling_rate=100)
    collect(replay(["options-template", "options-data", "template", "data"]))
    assert stored() == (4, 120_000, 175_440_000)


def test_the_rate_of_one_observation_domain_wins_over_the_exporters_rate_for_all_domains():
    ExporterSampling.objects.create(exporter="127.0.0.1", sampling_rate=10)
    # The v9 source id of the samplingrate capture is 369099009; its records carry their own rate (2048).
    ExporterSampling.objects.create(exporter="127.0.0.1", observation_domain=0, sampling_rate=7)
    collect(replay(["template", "data"]))  # source id 0
    assert Counter(FlowReport.objects.values_list("sampling_rate", flat=True)) == {7: 4}
