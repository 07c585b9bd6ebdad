"""A task sent through the real broker (Redis, or the embedded one) runs in a real worker process."""

import datetime as dt

import pytest
from django.utils import timezone

from vpnmonitor.models import AuditEvent
from vpnmonitor.testing.worker import celery_worker


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_apply_retention_runs_in_a_real_worker_and_prunes_the_database():
    from vpnmonitor.tasks import apply_retention

    now = timezone.now()
    AuditEvent.objects.bulk_create(
        [AuditEvent(user="u", action="old", created_at=now - dt.timedelta(days=400)) for _ in range(3)]
        + [AuditEvent(user="u", action="new", created_at=now)]
    )
    with celery_worker():
        result = apply_retention.delay().get(timeout=90)
    assert result["audit"] == 3
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["new"]
