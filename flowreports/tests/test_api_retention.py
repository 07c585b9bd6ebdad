"""DELETE /api/v1/flow-reports and GET/PUT /api/v1/flow-reports/retention: roles, 400s, audit, pruning."""

import datetime as dt

import pytest
from django.utils import timezone

from flowreports.models import FlowReport
from flowreports.tests.conftest import flow
from vpnmonitor.models import AuditEvent, RetentionPolicy

pytestmark = pytest.mark.django_db
URL = "/api/v1/flow-reports"
RETENTION = f"{URL}/retention"


def aged(days):
    start = (timezone.now() - dt.timedelta(days=days)).replace(tzinfo=None).isoformat()
    return flow(source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6, start=start)


def test_retention_defaults_to_seven_days(viewer_client):
    assert viewer_client.get(RETENTION).json() == {"result": {"days": 7}}


def test_operator_changes_retention_which_is_audited_and_prunes_right_away(operator_client, viewer_client):
    keep, old = aged(2), aged(4)
    response = operator_client.put(RETENTION, {"days": 3}, format="json")
    assert response.status_code == 200
    assert response.json() == {"result": {"message": "Flow reports retention policy updated successfully"}}
    assert viewer_client.get(RETENTION).json() == {"result": {"days": 3}}
    assert list(FlowReport.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not FlowReport.objects.filter(pk=old.pk).exists()
    event = AuditEvent.objects.get(action="retention.update")
    assert (event.user, event.target, event.details) == ("operator", "flowreports", {
        "days": 3, "previous_days": 7, "changes": {"days": {"before": 7, "after": 3}}})
    assert RetentionPolicy.objects.get(dataset="flowreports").last_pruned_rows == 1


@pytest.mark.parametrize("body", [
    {"days": 0}, {"days": -1}, {"days": "7"}, {"days": 7.0}, {"days": 1.5}, {"days": True}, {"days": None},
    {"days": 36501}, {}, {"retention": 7}, [7],
])
def test_retention_must_be_a_positive_json_integer(operator_client, body):
    response = operator_client.put(RETENTION, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid value for 'days'")
    assert RetentionPolicy.objects.get(dataset="flowreports").days == 7
    assert not AuditEvent.objects.filter(action="retention.update").exists()


def test_largest_retention_is_accepted(operator_client):
    assert operator_client.put(RETENTION, {"days": 36500}, format="json").status_code == 200


def test_viewers_and_ingest_keys_may_not_change_retention(viewer_client, key_client):
    assert viewer_client.put(RETENTION, {"days": 30}, format="json").status_code == 403
    response = key_client("ingest").put(RETENTION, {"days": 30}, format="json")
    assert response.status_code == 403
    assert response.json() == {"error": "This action needs the operator role."}
    assert key_client("operator").put(RETENTION, {"days": 30}, format="json").status_code == 200


def test_clear_deletes_everything_and_is_audited(operator_client, viewer_client):
    aged(1), aged(2), aged(30)
    response = operator_client.delete(URL)
    assert response.status_code == 200
    assert response.json() == {"result": {"message": "All flow reports cleared successfully"}}
    assert FlowReport.objects.count() == 0
    event = AuditEvent.objects.get(action="flowreports.clear")
    assert (event.user, event.details) == ("operator", {"deleted": 3})


def test_only_operators_may_clear(viewer_client, key_client):
    aged(1)
    assert viewer_client.delete(URL).status_code == 403
    assert key_client("ingest").delete(URL).status_code == 403
    assert FlowReport.objects.count() == 1
    assert not AuditEvent.objects.filter(action="flowreports.clear").exists()


def test_apply_retention_prunes_flow_reports_by_start_time(db):
    from vpnmonitor import retention

    keep, old = aged(6), aged(8)
    assert retention.prune_all()["flowreports"] == 1
    assert list(FlowReport.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not FlowReport.objects.filter(pk=old.pk).exists()
