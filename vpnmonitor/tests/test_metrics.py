"""GET /metrics: Prometheus text that the client's own parser reads, with the seeded numbers, behind a credential."""

import base64
import datetime as dt
import os

import pytest
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from flowreports.models import CollectorStatus
from monitoring.models import Certificate, VpnClient, VpnServer
from proxylogs.models import LogSource
from vpnmonitor.models import IngestCounter

pytestmark = pytest.mark.django_db
URL = "/metrics"
TOKEN = "a-metrics-token-long-enough"
STATUS_TIME = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
EXPIRES = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def samples(text):
    """{(sample name, sorted labels): value} of everything the Prometheus parser reads from text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def types(text):
    return {family.name: family.type for family in text_string_to_metric_families(text)}


@pytest.fixture
def seeded(tmp_path):
    now = timezone.now()
    east = VpnServer.objects.create(
        name="vpn-east", status_file="/run/openvpn/east.status", last_polled_at=now - dt.timedelta(seconds=5),
        last_success_at=now - dt.timedelta(seconds=5), last_status_time=STATUS_TIME,
    )
    west = VpnServer.objects.create(
        name="vpn-west", status_file="/run/openvpn/west.status", last_polled_at=now - dt.timedelta(seconds=5),
        last_success_at=now - dt.timedelta(minutes=10), last_error="ConnectionRefusedError: [Errno 111]",
    )
    VpnServer.objects.filter(pk=west.pk).update(created_at=now - dt.timedelta(days=1))
    VpnClient.objects.create(server=east, common_name="alice", status="Active", connections=2,
                             total_bytes_received=1_000_000, total_bytes_sent=2_500_000,
                             real_address="198.51.100.7:50000", virtual_address="10.8.0.6")
    VpnClient.objects.create(server=east, common_name="bob", status="Disconnected", connections=0,
                             total_bytes_received=300, total_bytes_sent=400)
    VpnClient.objects.create(server=west, common_name="alice", status="Active", connections=1,
                             total_bytes_received=7, total_bytes_sent=8)
    Certificate.objects.create(server=east, file="alice.crt", common_name="alice", serial="01",
                               not_before=EXPIRES - dt.timedelta(days=825), not_after=EXPIRES)
    Certificate.objects.create(server=east, file="old.crt", common_name="old", serial="02", revoked=True,
                               not_before=EXPIRES - dt.timedelta(days=900), not_after=EXPIRES - dt.timedelta(days=1))
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * 100)
    stat = os.stat(log)
    LogSource.objects.create(
        name="squid-main", path=str(log), checkpoint={"device": stat.st_dev, "inode": stat.st_ino, "offset": 40,
                                                      "head": "", "line": 4},
        last_import_at=now - dt.timedelta(minutes=5), lines_imported=4, lines_rejected=2,
    )
    CollectorStatus.objects.create(
        hostname="collector-1", listen="0.0.0.0:2055", pid=4242, started_at=now - dt.timedelta(hours=1),
        updated_at=now - dt.timedelta(seconds=3), packets_received=120, flows_received=3000, flows_stored=2990,
        flows_dropped=10, malformed_packets=1, sets_dropped_no_template=4, packets_lost=7,
    )
    return now


def test_the_output_parses_and_carries_the_seeded_series(seeded, viewer_client, key_client):
    flows = [{"subscriber_id": "s1", "source_ip": "10.0.0.1", "destination_ip": "192.0.2.1", "source_port": 1000,
              "destination_port": 443, "protocol": 6, "packets": 1, "bytes": 100,
              "start_time": "2025-03-01T10:00:00Z", "end_time": "2025-03-01T10:00:01Z"}] * 3
    assert key_client("ingest").post("/api/v1/flow-reports", flows, format="json").status_code == 201

    response = viewer_client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    found = samples(text)
    expected = {
        # OpenVPN-exporter names; status_path is the server name; all-time totals.
        ("openvpn_server_client_received_bytes_total", (("common_name", "alice"), ("status_path", "vpn-east"))):
            1_000_000,
        ("openvpn_server_client_sent_bytes_total", (("common_name", "alice"), ("status_path", "vpn-east"))):
            2_500_000,
        ("openvpn_server_client_received_bytes_total", (("common_name", "bob"), ("status_path", "vpn-east"))): 300,
        ("openvpn_server_client_sent_bytes_total", (("common_name", "bob"), ("status_path", "vpn-east"))): 400,
        ("openvpn_server_client_received_bytes_total", (("common_name", "alice"), ("status_path", "vpn-west"))): 7,
        ("vpnmonitor_openvpn_client_connected", (("common_name", "alice"), ("status_path", "vpn-east"))): 1,
        ("vpnmonitor_openvpn_client_connected", (("common_name", "bob"), ("status_path", "vpn-east"))): 0,
        ("vpnmonitor_openvpn_client_connections", (("common_name", "alice"), ("status_path", "vpn-east"))): 2,
        ("openvpn_server_connected_clients", (("status_path", "vpn-east"),)): 2,
        ("openvpn_server_connected_clients", (("status_path", "vpn-west"),)): 1,
        ("openvpn_up", (("status_path", "vpn-east"),)): 1,
        ("openvpn_up", (("status_path", "vpn-west"),)): 0,
        ("openvpn_status_update_time_seconds", (("status_path", "vpn-east"),)): STATUS_TIME.timestamp(),
        ("vpnmonitor_openvpn_server_stale", (("status_path", "vpn-east"),)): 0,
        ("vpnmonitor_openvpn_server_stale", (("status_path", "vpn-west"),)): 1,
        ("vpnmonitor_openvpn_server_poll_failing", (("status_path", "vpn-west"),)): 1,
        ("vpnmonitor_openvpn_server_last_success_timestamp_seconds", (("status_path", "vpn-west"),)):
            (seeded - dt.timedelta(minutes=10)).timestamp(),
        # Certificates
        ("vpnmonitor_certificate_not_after_timestamp_seconds",
         (("common_name", "alice"), ("file", "alice.crt"), ("status_path", "vpn-east"))): EXPIRES.timestamp(),
        ("vpnmonitor_certificate_revoked",
         (("common_name", "alice"), ("file", "alice.crt"), ("status_path", "vpn-east"))): 0,
        ("vpnmonitor_certificate_revoked", (("common_name", "old"), ("file", "old.crt"), ("status_path", "vpn-east"))):
            1,
        # Proxy log source: 100 bytes on disk, checkpoint at 40, last import 5 minutes ago.
        ("vpnmonitor_proxy_log_unread_bytes", (("source", "squid-main"),)): 60,
        ("vpnmonitor_proxy_log_lines_imported_total", (("source", "squid-main"),)): 4,
        ("vpnmonitor_proxy_log_lines_rejected_total", (("source", "squid-main"),)): 2,
        ("vpnmonitor_proxy_log_lagging", (("source", "squid-main"),)): 1,
        ("vpnmonitor_proxy_log_failing", (("source", "squid-main"),)): 0,
        # Flow collector counters as collect_flows saved them.
        ("vpnmonitor_flow_collector_up", (("collector", "collector-1/0.0.0.0:2055"),)): 1,
        ("vpnmonitor_flow_collector_packets_received_total", (("collector", "collector-1/0.0.0.0:2055"),)): 120,
        ("vpnmonitor_flow_collector_flows_received_total", (("collector", "collector-1/0.0.0.0:2055"),)): 3000,
        ("vpnmonitor_flow_collector_flows_stored_total", (("collector", "collector-1/0.0.0.0:2055"),)): 2990,
        ("vpnmonitor_flow_collector_flows_dropped_total", (("collector", "collector-1/0.0.0.0:2055"),)): 10,
        ("vpnmonitor_flow_collector_packets_lost_total", (("collector", "collector-1/0.0.0.0:2055"),)): 7,
        ("vpnmonitor_flow_collector_malformed_packets_total", (("collector", "collector-1/0.0.0.0:2055"),)): 1,
        ("vpnmonitor_flow_collector_sets_dropped_no_template_total",
         (("collector", "collector-1/0.0.0.0:2055"),)): 4,
        # The HTTP batch above.
        ("vpnmonitor_ingest_records_total", (("dataset", "flow_reports"),)): 3,
        ("vpnmonitor_ingest_batches_total", (("dataset", "flow_reports"),)): 1,
        ("vpnmonitor_celery_broker_up", ()): 1,
    }
    assert {key: found.get(key) for key in expected} == expected
    since = found[("vpnmonitor_openvpn_server_seconds_since_last_success", (("status_path", "vpn-west"),))]
    assert 600 <= since < 660
    lag = found[("vpnmonitor_proxy_log_seconds_since_last_import", (("source", "squid-main"),))]
    assert 300 <= lag < 360
    kinds = types(text)
    assert kinds["openvpn_server_client_received_bytes"] == "counter"
    assert kinds["openvpn_up"] == "gauge"
    assert kinds["vpnmonitor_flow_collector_flows_dropped"] == "counter"
    # Addresses never appear: not the client's real or tunnel address.
    assert "198.51.100.7" not in text and "10.8.0.6" not in text


def test_a_server_never_polled_has_no_last_success_series_and_is_down(viewer_client):
    VpnServer.objects.create(name="vpn-new", status_file="/run/openvpn/new.status")

    found = samples(viewer_client.get(URL).content.decode())

    assert found[("openvpn_up", (("status_path", "vpn-new"),))] == 0
    assert found[("vpnmonitor_openvpn_server_stale", (("status_path", "vpn-new"),))] == 0
    assert ("vpnmonitor_openvpn_server_seconds_since_last_success", (("status_path", "vpn-new"),)) not in found


def test_client_counters_are_the_all_time_totals_so_they_never_go_down(viewer_client):
    server = VpnServer.objects.create(name="vpn-east", status_file="/run/openvpn/east.status")
    client = VpnClient.objects.create(server=server, common_name="alice", status="Active", connections=1,
                                      total_bytes_received=5000, total_bytes_sent=6000)
    key = ("openvpn_server_client_received_bytes_total", (("common_name", "alice"), ("status_path", "vpn-east")))
    assert samples(viewer_client.get(URL).content.decode())[key] == 5000

    # The client disconnects and reconnects: its session counters restart, the all-time total does not.
    VpnClient.objects.filter(pk=client.pk).update(status="Disconnected", connections=0)
    assert samples(viewer_client.get(URL).content.decode())[key] == 5000


def test_celery_queue_length_counts_messages_waiting_in_the_real_broker(viewer_client):
    from vpnmonitor.celery import app

    app.control.purge()
    try:
        for _ in range(3):
            app.send_task("vpnmonitor.tasks.apply_retention", expires=600)
        found = samples(viewer_client.get(URL).content.decode())
        assert found[("vpnmonitor_celery_queue_length", (("queue", "celery"),))] == 3
    finally:
        app.control.purge()
    found = samples(viewer_client.get(URL).content.decode())
    assert found[("vpnmonitor_celery_queue_length", (("queue", "celery"),))] == 0


def test_an_unreachable_broker_is_a_metric_not_a_failed_scrape(viewer_client, settings, tmp_path):
    if settings.REDIS_URL:
        settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    else:
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "missing")}

    response = viewer_client.get(URL)

    assert response.status_code == 200
    found = samples(response.content.decode())
    assert found[("vpnmonitor_celery_broker_up", ())] == 0
    assert not any(name == "vpnmonitor_celery_queue_length" for name, _ in found)


def test_openmetrics_is_served_when_the_scraper_asks_for_it(viewer_client):
    response = viewer_client.get(URL, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


# ---- who may scrape ----


def test_anonymous_callers_are_refused_with_401(api_client):
    response = api_client.get(URL)

    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]


def test_the_metrics_token_is_accepted_as_a_bearer_token(api_client, settings):
    settings.METRICS_TOKEN = TOKEN
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    response = api_client.get(URL)

    assert response.status_code == 200
    assert "# TYPE openvpn_up gauge" in response.content.decode()


def test_a_wrong_metrics_token_is_refused_with_401(api_client, settings):
    settings.METRICS_TOKEN = TOKEN
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-the-metrics-token")

    assert api_client.get(URL).status_code == 401


def test_without_a_configured_token_no_bearer_string_opens_metrics(api_client, settings):
    settings.METRICS_TOKEN = ""
    api_client.credentials(HTTP_AUTHORIZATION="Bearer ")

    assert api_client.get(URL).status_code == 401


def test_viewer_and_operator_keys_may_scrape_but_ingest_keys_may_not(key_client):
    assert key_client("viewer").get(URL).status_code == 200
    assert key_client("operator").get(URL).status_code == 200
    assert key_client("ingest").get(URL).status_code == 403


def test_viewers_may_scrape_with_http_basic_and_staff_status_alone_may_not(api_client, django_user_model):
    from django.contrib.auth.models import Group

    django_user_model.objects.create_user("staff", password="pw-staff", is_staff=True)
    reader = django_user_model.objects.create_user("reader", password="pw-reader")
    reader.groups.add(Group.objects.get(name="viewers"))

    api_client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"staff:pw-staff").decode())
    assert api_client.get(URL).status_code == 403
    api_client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"reader:pw-reader").decode())
    assert api_client.get(URL).status_code == 200


def test_metrics_public_serves_anyone(api_client, settings):
    settings.METRICS_PUBLIC = True

    assert api_client.get(URL).status_code == 200


def _synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_ingest_counter_adds_up_and_never_changes_a_callers_durability():
    IngestCounter.add("proxy_traffic", 1000)
    IngestCounter.add("proxy_traffic", 250)
    with transaction.atomic():
        IngestCounter.add("proxy_traffic", 5)
        if connection.vendor == "postgresql":
            # The caller's transaction keeps its own setting: its data is still flushed at commit.
            assert _synchronous_commit() == "on"
    counter = IngestCounter.objects.get(dataset="proxy_traffic")
    assert (counter.records, counter.batches) == (1255, 3)
    if connection.vendor == "postgresql":
        assert _synchronous_commit() == "on"  # SET LOCAL ended with the counter's own transaction
