"""A poll that fails, however it fails, is recorded on its server and never stops the polls of the others."""

import time

import pytest
from django.core.management import CommandError, call_command
from prometheus_client.parser import text_string_to_metric_families

from monitoring.models import VpnClient, VpnServer
from monitoring.tests.factories import at, status2
from vpnmonitor.ingestion_health import ingestion_health
from vpnmonitor.testing.worker import celery_worker

# A counter no 64-bit column can hold (a corrupt file): the parser takes it, storing it raises inside the service.
TOO_BIG = 2**64


@pytest.fixture
def servers(tmp_path):
    broken = tmp_path / "broken-secret-dir" / "server.status"
    broken.parent.mkdir()
    broken.write_text(status2(at(60), [("mallory", 1, at(0), TOO_BIG, 10, "10.8.0.9")]))
    good = tmp_path / "good.status"
    good.write_text(status2(at(60), [("alice", 2, at(0), 1500, 2500, "10.8.0.2")]))
    # Polled in name order: the broken server comes first.
    return (VpnServer.objects.create(name="a-broken", status_file=str(broken)),
            VpnServer.objects.create(name="b-good", status_file=str(good)))


def failing_metric(text):
    return {sample.labels["status_path"]: sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "vpnmonitor_openvpn_server_poll_failing"}


def assert_broken_failing_and_good_polled(broken, good):
    broken.refresh_from_db()
    assert broken.last_error.startswith(("OverflowError: ", "DataError: "))
    assert "unexpected error while recording the poll" in broken.last_error
    assert "broken-secret-dir" not in broken.last_error and len(broken.last_error) <= 200
    assert broken.last_success_at is None and broken.last_polled_at is not None
    alice = VpnClient.objects.get(server=good)
    assert (alice.status, alice.total_bytes_received, alice.total_bytes_sent) == ("Active", 1500, 2500)
    good.refresh_from_db()
    assert good.last_error == ""
    health = {s.name: s.failing for s in ingestion_health().servers}
    assert health == {"a-broken": True, "b-good": False}


@pytest.mark.django_db
def test_a_poll_that_raises_in_the_command_marks_its_server_failing_and_the_next_is_polled(
    servers, viewer_client, admin_client
):
    broken, good = servers
    with pytest.raises(CommandError, match="1 server"):
        call_command("poll_openvpn")

    assert_broken_failing_and_good_polled(broken, good)
    assert failing_metric(viewer_client.get("/metrics").content.decode()) == {"a-broken": 1.0, "b-good": 0.0}
    page = admin_client.get("/admin/monitoring/vpnserver/").content.decode()
    assert "unexpected error while recording the poll" in page
    # Both servers are enabled; of the "last poll ok" column, one is False.
    assert (page.count('alt="False"'), page.count('alt="True"')) == (1, 3)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_poll_that_raises_in_a_real_worker_marks_its_server_failing_and_the_next_is_polled(servers):
    from monitoring.tasks import poll_openvpn_servers

    broken, good = servers
    with celery_worker():
        assert poll_openvpn_servers.delay().get(timeout=90) == 2
        deadline = time.monotonic() + 90
        while VpnServer.objects.filter(last_polled_at=None).exists():
            assert time.monotonic() < deadline, "the per-server polls did not run"
            time.sleep(0.5)

    assert_broken_failing_and_good_polled(broken, good)


@pytest.mark.django_db
def test_a_malformed_status_file_leaves_a_short_error_without_the_files_path_or_contents(tmp_path):
    path = tmp_path / "hidden-dir" / "server.status"
    path.parent.mkdir()
    path.write_text(status2(at(60), []).replace("GLOBAL_STATS", "secret-user-line,x\nGLOBAL_STATS"))
    server = VpnServer.objects.create(name="vpn", status_file=str(path), management_password="hunter2")

    with pytest.raises(CommandError):
        call_command("poll_openvpn", "--server", "vpn")

    server.refresh_from_db()
    assert server.last_error == "StatusParseError: status file: line 5: unexpected line …"


@pytest.mark.django_db
def test_a_missing_status_file_says_so_without_its_path(tmp_path):
    server = VpnServer.objects.create(name="vpn", status_file=str(tmp_path / "gone-dir" / "server.status"))

    with pytest.raises(CommandError):
        call_command("poll_openvpn", "--server", "vpn")

    server.refresh_from_db()
    assert server.last_error == "FileNotFoundError: file: No such file or directory"
