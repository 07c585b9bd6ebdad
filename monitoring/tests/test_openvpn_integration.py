"""End-to-end test: a real OpenVPN 2.x server and clients, observed through the management interface and status file."""

import time

import pytest

from monitoring.sources.rates import client_rates
from monitoring.tests import openvpn_harness
from monitoring.tests.openvpn_harness import openvpn_lab, require_integration

CLIENTS = ("user-alice", "user-bob")
openvpn_lab_fixture = openvpn_harness.openvpn_lab_fixture  # how other test modules pick up the fixture


@pytest.mark.integration
def test_real_openvpn_server_is_read_through_management_and_status_file():
    require_integration()
    started = time.monotonic()
    with openvpn_lab(CLIENTS) as lab:
        first = lab.status()
        assert first.version == 3
        assert first.title.startswith("OpenVPN 2.")
        clients = {client.common_name: client for client in first.clients}
        assert set(clients) == set(CLIENTS)
        assert {c.virtual_address for c in clients.values()} <= {str(ip) for ip in lab.subnet.hosts()}
        assert len({c.virtual_address for c in clients.values()}) == 2
        assert len({c.client_id for c in clients.values()}) == 2
        assert all(c.real_ip == "127.0.0.1" and c.real_port for c in clients.values())
        assert all(c.cipher for c in clients.values())

        with lab.management() as management:
            load = management.load_stats()
        assert load.client_count == 2

        lab.send_traffic("user-alice", 50_000)
        grown = lab.wait_for_status(
            lambda s: (
                s.time > first.time
                and _client(s, "user-alice").bytes_received >= clients["user-alice"].bytes_received + 50_000
            )
        )
        rates = {rate.common_name: rate for rate in client_rates(first, grown)}
        assert not rates["user-alice"].new_session
        assert rates["user-alice"].bytes_received >= 50_000
        assert rates["user-alice"].bytes_received_per_second > 0

        from_file = lab.wait_for_status_file(lambda s: {c.common_name for c in s.clients} == set(CLIENTS))
        assert from_file.version == 2
        assert {c.virtual_address for c in from_file.clients} == {c.virtual_address for c in clients.values()}

        lab.stop_client("user-bob")
        remaining = lab.wait_for_status(lambda s: len(s.clients) == 1, timeout=12)
        assert [c.common_name for c in remaining.clients] == ["user-alice"]
        assert _client(remaining, "user-alice").client_id == clients["user-alice"].client_id
        lab.wait_for_status_file(lambda s: [c.common_name for c in s.clients] == ["user-alice"])
    assert not lab.server.running
    assert not any(client.running for client in lab.clients.values())
    assert time.monotonic() - started < 30


@pytest.mark.integration
def test_lab_fixture_exposes_paths_for_other_tests(openvpn_lab_fixture):
    lab = openvpn_lab_fixture
    assert lab.management_host == "127.0.0.1" and lab.management_port > 0
    assert (lab.pki_dir / "ca.crt").exists() and (lab.pki_dir / "user-bob.key").exists()
    assert "Initialization Sequence Completed" in lab.log_path.read_text()
    snapshot = lab.wait_for_status_file(lambda s: len(s.clients) == 2)
    assert {c.common_name for c in snapshot.clients} == {"user-alice", "user-bob"}


def _client(snapshot, common_name):
    return next(client for client in snapshot.clients if client.common_name == common_name)


def test_missing_openvpn_skips_unless_required(monkeypatch):
    monkeypatch.setattr(openvpn_harness, "integration_unavailable_reason", lambda: "no openvpn here")
    monkeypatch.delenv(openvpn_harness.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no openvpn here"):
        require_integration()
    monkeypatch.setenv(openvpn_harness.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no openvpn here"):
        require_integration()
