"""Every settings change through admin, the API or a management command writes an AuditEvent without secrets."""

import json

import pytest
from django.core.management import call_command
from django.forms import MultiWidget
from django.urls import reverse

from vpnmonitor.api.principals import request_actor
from vpnmonitor.models import Actor, AuditEvent, audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password=None)
    client.force_login(user)
    return client


def _form_data(client, url, **changes):
    """What the admin form at url would post unchanged, with changes applied (None leaves a field out)."""
    form = client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, MultiWidget):
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = "" if part is None else part
                if field.show_hidden_initial:  # as the browser sends the page's hidden initial value back
                    data[f"{form[name].html_initial_name}_{i}"] = "" if part is None else part
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(item) for item in value]
        elif value is not None:
            data[name] = value
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def _post(client, url, **changes):
    response = client.post(url, _form_data(client, url, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    return response


def _event(action):
    event = AuditEvent.objects.get(action=action)
    return event, event.details.get("changes", {})


def test_switching_gdpr_mode_in_admin_is_audited_with_before_and_after(root):
    _post(root, reverse("admin:vpnmonitor_privacysettings_add"), gdpr_mode="on")
    event, changes = _event("privacy.create")
    assert (event.user, event.client_address, changes) == ("root", "127.0.0.1", {"gdpr_mode": {"after": True}})

    _post(root, reverse("admin:vpnmonitor_privacysettings_change", args=[1]), gdpr_mode=None)
    event, changes = _event("privacy.update")
    assert event.target == "GDPR mode off"
    assert changes == {"gdpr_mode": {"before": True, "after": False}}


def test_retention_changes_in_admin_and_through_the_api_are_audited(root, operator_client):
    from flowreports.services import DATASET, retention_days
    from vpnmonitor.models import RetentionPolicy

    retention_days()
    policy = RetentionPolicy.objects.get(dataset=DATASET)
    _post(root, reverse("admin:vpnmonitor_retentionpolicy_change", args=[policy.pk]), days="9")
    event, changes = _event("retention.update")
    assert (event.user, changes) == ("root", {"days": {"before": policy.days, "after": 9}})

    AuditEvent.objects.all().delete()
    assert operator_client.put("/api/v1/flow-reports/retention", {"days": 4}, format="json").status_code == 200
    event, changes = _event("retention.update")
    assert (event.user, changes) == ("operator", {"days": {"before": 9, "after": 4}})


def test_api_keys_created_and_revoked_in_admin_or_by_command_are_audited_without_the_key(root, capsys):
    from vpnmonitor.models import ApiKey

    root.post(reverse("admin:vpnmonitor_apikey_add"), {"name": "worker-7", "role": "ingest", "tenant_user_id": "3"})
    key = ApiKey.objects.get(name="worker-7")
    event, changes = _event("apikey.create")
    assert (event.user, event.target) == ("root", "worker-7 (ingest)")
    assert changes == {"name": {"after": "worker-7"}, "role": {"after": "ingest"}, "tenant_user_id": {"after": 3}}
    assert key.key_hash not in json.dumps(event.details)

    root.post(reverse("admin:vpnmonitor_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    assert _event("apikey.revoke")[0].target == "worker-7 (ingest)"

    AuditEvent.objects.all().delete()
    call_command("createapikey", "script", "--role", "viewer")
    plaintext = capsys.readouterr().out.strip()
    event, changes = _event("apikey.create")
    assert event.user.startswith("manage.py createapikey (")
    assert changes["role"] == {"after": "viewer"}
    assert plaintext.split("_", 2)[2] not in json.dumps(event.details)


def test_oauth_applications_are_audited_and_their_secret_is_never_written(root, django_user_model):
    from oauth2_provider.models import Application

    owner = django_user_model.objects.create_user("siem-owner", password=None)
    url = reverse("admin:oauth2_provider_application_add")
    _post(root, url, name="siem", client_id="siem-client", client_secret="a-secret-nobody-may-read",
          user=str(owner.pk), client_type="confidential", authorization_grant_type="client-credentials",
          redirect_uris="", algorithm="")
    event, changes = _event("oauth_application.create")
    assert changes["client_secret"] == {"changed": True}
    assert changes["name"] == {"after": "siem"} and changes["user"] == {"after": "siem-owner"}
    assert "a-secret-nobody-may-read" not in json.dumps(event.details)

    app = Application.objects.get(client_id="siem-client")
    root.post(reverse("admin:oauth2_provider_application_delete", args=[app.pk]), {"post": "yes"})
    assert _event("oauth_application.delete")[0].target == "siem"


def test_vpn_servers_and_log_sources_are_audited_and_the_management_password_is_not(root, tmp_path):
    from monitoring.models import VpnServer

    password_file = tmp_path / "mgmt.pw"
    password_file.write_text("management-secret-1\n")
    call_command("add_vpn_server", "vpn-eu-1", "--management", "127.0.0.1:7505",
                 "--password-file", str(password_file), "--time-zone", "Europe/Berlin", stdout=None)
    event, changes = _event("vpnserver.create")
    assert event.user.startswith("manage.py add_vpn_server (")
    assert changes["management_address"] == {"after": "127.0.0.1:7505"}
    assert changes["time_zone"] == {"after": "Europe/Berlin"}
    assert changes["management_password"] == {"changed": True}

    server = VpnServer.objects.get(name="vpn-eu-1")
    _post(root, reverse("admin:monitoring_vpnserver_change", args=[server.pk]), region="eu-west",
          management_password="management-secret-2")
    event, changes = _event("vpnserver.update")
    assert changes == {"region": {"before": "", "after": "eu-west"}, "management_password": {"changed": True}}
    assert "management-secret" not in json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))

    _post(root, reverse("admin:proxylogs_logsource_add"), name="squid-main", path="/var/log/squid/access.log",
          format="squid")
    event, changes = _event("logsource.create")
    assert changes["path"] == {"after": "/var/log/squid/access.log"}


def test_users_and_groups_are_audited_with_their_groups_and_never_a_password(root, django_user_model):
    from django.contrib.auth.models import Group

    root.post(reverse("admin:auth_user_add"), {
        "username": "clerk", "password1": "Very-long-password-77", "password2": "Very-long-password-77",
        "usable_password": "true",
    })
    clerk = django_user_model.objects.get(username="clerk")
    event, changes = _event("user.create")
    assert changes["username"] == {"after": "clerk"}
    assert "Very-long-password-77" not in json.dumps(event.details)

    viewers = Group.objects.get(name="viewers")
    _post(root, reverse("admin:auth_user_change", args=[clerk.pk]), groups=[str(viewers.pk)], is_staff="on")
    event, changes = _event("user.update")
    assert changes == {"is_staff": {"before": False, "after": True},
                       "groups": {"before": [], "after": ["viewers"]}}

    _post(root, reverse("admin:auth_group_add"), name="auditors")
    assert _event("group.create")[1] == {"name": {"after": "auditors"}}

    root.post(reverse("admin:auth_user_password_change", args=[clerk.pk]), {
        "password1": "Another-long-password-88", "password2": "Another-long-password-88", "usable_password": "true",
    })
    event = AuditEvent.objects.get(action="user.password_change")
    assert (event.user, event.target) == ("root", "clerk")
    assert "Another-long-password-88" not in json.dumps(event.details)


def test_the_beat_schedule_changed_in_admin_is_audited(root):
    from django_celery_beat.models import PeriodicTask

    from vpnmonitor import schedule

    schedule.ensure_periodic_tasks()
    task = PeriodicTask.objects.filter(enabled=True).order_by("name").first()
    root.post(reverse("admin:django_celery_beat_periodictask_changelist"),
              {"action": "disable_tasks", "_selected_action": [task.pk]})
    event, changes = _event("periodic_task.update")
    assert (event.user, event.target, changes) == ("root", str(task), {"enabled": {"before": True, "after": False}})
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False

    interval = task.interval
    inline_management_form = {"periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0"}
    _post(root, reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk]),
          every=str(interval.every * 2), **inline_management_form)
    event, changes = _event("schedule.update")
    assert changes == {"every": {"before": interval.every, "after": interval.every * 2}}


def test_users_made_or_changed_by_djangos_own_commands_are_audited_without_the_password(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-Secret-77")
    call_command("createsuperuser", username="ops", email="ops@example.com", interactive=False, verbosity=0)
    from django.contrib.auth.management.commands.changepassword import Command as DjangoChangePassword

    monkeypatch.setattr(DjangoChangePassword, "_get_pass", lambda self, prompt="": "second-Secret-88")
    call_command("changepassword", "ops", verbosity=0)

    events = AuditEvent.objects.filter(target="ops").order_by("id")
    assert [(e.action, e.user.split(" (")[0], e.details["changes"]) for e in events] == [
        ("user.create", "manage.py createsuperuser",
         {"username": {"after": "ops"}, "is_superuser": {"after": True}, "password": {"changed": True}}),
        ("user.update", "manage.py changepassword", {"password": {"changed": True}}),
    ]
    written = json.dumps([e.details for e in events])
    assert "Secret" not in written


@pytest.mark.django_db
def test_audit_records_an_actor_its_name_or_the_system_and_refuses_a_request(rf, django_user_model):
    request = rf.get("/admin/", REMOTE_ADDR="192.0.2.7")
    request.user = django_user_model.objects.create_user("alice", password="pw")

    audit(request_actor(request), "test.by_request", "target-1")
    audit("manage.py thing (root)", "test.by_name")
    audit(None, "test.by_system")
    with pytest.raises(TypeError):
        audit(request, "test.refused")

    rows = AuditEvent.objects.order_by("id").values_list("user", "action", "target", "client_address")
    assert list(rows) == [
        ("alice", "test.by_request", "target-1", "192.0.2.7"),
        ("manage.py thing (root)", "test.by_name", "", None),
        ("system", "test.by_system", "", None),
    ]
    assert request_actor(request) == Actor("alice", "192.0.2.7")

