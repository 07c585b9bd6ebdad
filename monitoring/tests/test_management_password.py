"""OpenVPN management passwords: stored as Fernet tokens, used in plain text, never shown back in admin."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.urls import reverse

from monitoring.models import VpnServer
from vpnmonitor.secrets_at_rest import decrypt

pytestmark = pytest.mark.django_db


def _stored(server):
    with connection.cursor() as cursor:
        cursor.execute("SELECT management_password FROM monitoring_vpnserver WHERE id = %s", [server.pk])
        return cursor.fetchone()[0]


def test_the_password_is_stored_as_a_fernet_token_and_read_back_in_plain_text():
    server = VpnServer.objects.create(name="vpn-eu", management_address="127.0.0.1:7505",
                                      management_password="mgmt-pass-42")
    stored = _stored(server)
    assert "mgmt-pass-42" not in stored
    assert stored.startswith("gAAAAA")  # Fernet version byte 0x80, base64
    assert decrypt(stored) == "mgmt-pass-42"
    assert VpnServer.objects.get(pk=server.pk).management_password == "mgmt-pass-42"


def test_a_token_from_another_secret_key_is_refused_with_a_reason(settings):
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with pytest.raises(ValueError, match="SECRET_KEY changed"):
        decrypt(foreign)


def test_a_rotated_secret_key_still_opens_old_tokens_through_the_fallbacks(settings):
    server = VpnServer.objects.create(name="vpn-eu", management_password="mgmt-pass-42")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    assert VpnServer.objects.get(pk=server.pk).management_password == "mgmt-pass-42"


def test_a_password_no_key_opens_fails_only_that_servers_poll_and_survives_a_save(settings, client,
                                                                                  django_user_model):
    from monitoring.services import poll_server

    locked = VpnServer.objects.create(name="vpn-locked", management_address="127.0.0.1:9",
                                      management_password="mgmt-pass-42")
    token = _stored(locked)
    settings.SECRET_KEY = "a-new-secret-key-without-fallbacks-" + "y" * 30

    server = VpnServer.objects.get(pk=locked.pk)  # loads; only using the password fails
    result = poll_server(server)
    assert not result.ok
    assert "cannot be decrypted" in result.error and token not in result.error
    assert VpnServer.objects.get(pk=locked.pk).last_error == result.error

    client.force_login(django_user_model.objects.create_superuser("root", password=None))
    assert client.get(reverse("admin:monitoring_vpnserver_changelist")).status_code == 200
    url = reverse("admin:monitoring_vpnserver_change", args=[locked.pk])
    assert client.get(url).status_code == 200
    fields = {"name": "vpn-locked", "enabled": "on", "management_address": "127.0.0.1:9", "region": "eu"}
    assert client.post(url, {**fields, "management_password": ""}).status_code == 302
    assert _stored(locked) == token  # kept as it was, for the old key to open once it is a fallback
    settings.SECRET_KEY_FALLBACKS = ["a-new-secret-key-without-fallbacks-" + "y" * 30]


def test_admin_never_shows_the_password_and_an_empty_field_keeps_it(client, django_user_model):
    server = VpnServer.objects.create(name="vpn-eu", management_address="127.0.0.1:7505",
                                      management_password="mgmt-pass-42")
    client.force_login(django_user_model.objects.create_superuser("root", password=None))
    url = reverse("admin:monitoring_vpnserver_change", args=[server.pk])
    page = client.get(url).content.decode()
    assert "mgmt-pass-42" not in page and _stored(server) not in page

    fields = {"name": "vpn-eu", "enabled": "on", "management_address": "127.0.0.1:7505", "region": "eu"}
    assert client.post(url, {**fields, "management_password": ""}).status_code == 302
    assert VpnServer.objects.get(pk=server.pk).management_password == "mgmt-pass-42"
    assert client.post(url, {**fields, "management_password": "new-pass"}).status_code == 302
    assert VpnServer.objects.get(pk=server.pk).management_password == "new-pass"
    assert client.post(url, {**fields, "clear_management_password": "on"}).status_code == 302
    assert _stored(server) == ""


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_passwords_already_stored():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before, after = [("monitoring", "0002_server_time_zone")], [("monitoring", "0003_encrypt_management_password")]
    executor.migrate(before)
    try:
        old_server = MigrationExecutor(connection).loader.project_state(before).apps.get_model("monitoring", "VpnServer")
        server = old_server.objects.create(name="vpn-old", management_address="127.0.0.1:7505",
                                           management_password="plain-old-pass")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        stored = _stored(server)
        assert stored.startswith("gAAAAA") and decrypt(stored) == "plain-old-pass"
        assert VpnServer.objects.get(pk=server.pk).management_password == "plain-old-pass"
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.integration
def test_a_real_openvpn_server_with_a_management_password_is_read_with_the_decrypted_password(tmp_path, capsys):
    from django.core.management import CommandError, call_command

    from monitoring.models import VpnClient
    from monitoring.tests import openvpn_harness

    openvpn_harness.require_integration()
    with openvpn_harness.openvpn_lab(("user-alice",), management_password="mgmt-pass-42") as lab:
        password_file = tmp_path / "mgmt.pw"
        password_file.write_text("mgmt-pass-42\n")
        call_command("add_vpn_server", "lab", "--management", f"{lab.management_host}:{lab.management_port}",
                     "--password-file", str(password_file))
        server = VpnServer.objects.get(name="lab")
        assert "mgmt-pass-42" not in _stored(server)

        call_command("poll_openvpn", "--server", "lab")
        assert VpnServer.objects.get(name="lab").last_error == ""
        assert list(VpnClient.objects.filter(server=server).values_list("common_name", flat=True)) == ["user-alice"]

        # The same server with a wrong password: the poll fails at the password prompt and says so.
        VpnServer.objects.filter(pk=server.pk).update(management_password="wrong")  # stored encrypted, like any save
        with pytest.raises(CommandError, match="1 server"):
            call_command("poll_openvpn", "--server", "lab")
        assert "waiting for the answer to the password command" in VpnServer.objects.get(name="lab").last_error
