import datetime as dt

import pytest
from django.utils import timezone

from vpnmonitor import retention
from vpnmonitor.models import AuditEvent, RetentionPolicy

pytestmark = pytest.mark.django_db


def test_every_registered_dataset_gets_a_policy_row_with_its_default():
    assert RetentionPolicy.objects.get(dataset="audit").days == 365


def test_prune_deletes_exactly_the_rows_past_the_cutoff_in_batches():
    now = timezone.now()
    retention.set_retention_days("audit", 10)
    cutoff = now - dt.timedelta(days=10)
    old = [cutoff - dt.timedelta(microseconds=1), cutoff - dt.timedelta(days=1), cutoff - dt.timedelta(days=400)]
    kept = [cutoff, cutoff + dt.timedelta(seconds=1), now]
    AuditEvent.objects.bulk_create(
        [AuditEvent(user="u", action="old", created_at=m) for m in old * 3]
        + [AuditEvent(user="u", action="kept", created_at=m) for m in kept]
    )
    deleted = retention.prune("audit", now=now, batch_size=2)
    assert deleted == 9
    assert sorted(AuditEvent.objects.values_list("created_at", flat=True)) == kept
    policy = RetentionPolicy.objects.get(dataset="audit")
    assert policy.last_pruned_rows == 9
    assert policy.last_pruned_at is not None


def test_prune_all_reports_each_dataset():
    AuditEvent.objects.create(user="u", action="x", created_at=timezone.now() - dt.timedelta(days=366))
    results = retention.prune_all()
    assert results["audit"] == 1


def test_apply_retention_task_skips_while_another_run_holds_the_lock():
    from vpnmonitor.jobs import exclusive
    from vpnmonitor.tasks import apply_retention

    with exclusive("apply_retention") as acquired:
        assert acquired
        assert apply_retention() == {"skipped": "another apply_retention is running"}
    assert apply_retention()["audit"] == 0


def test_a_derived_dataset_follows_the_policy_it_names_and_has_no_row_of_its_own():
    retention.register("test_derived", "vpnmonitor.AuditEvent", "created_at", 999, "derived", policy="audit")
    try:
        retention.ensure_policies()
        assert not RetentionPolicy.objects.filter(dataset="test_derived").exists()
        retention.set_retention_days("audit", 3)
        assert retention.retention_days("test_derived") == 3
        now = timezone.now()
        AuditEvent.objects.create(user="u", action="x", created_at=now - dt.timedelta(days=4))
        assert retention.prune("test_derived", now=now) == 1
    finally:
        retention._registry.pop("test_derived")
