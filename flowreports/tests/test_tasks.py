"""The beat task that seals hours runs in a real worker process, through the real broker."""

import datetime as dt

import pytest
from django.utils import timezone

from flowreports import rollups, services
from flowreports.models import FlowReport, FlowReportDestinationHourly, FlowReportSealedHour
from vpnmonitor.testing.worker import celery_worker


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_seal_destination_hours_runs_in_a_real_worker():
    from flowreports.tasks import seal_destination_hours

    start = rollups.floor_hour(timezone.now()) - 6 * rollups.HOUR
    services.store_flows([{
        "source_ip": "10.8.0.1", "destination_ip": "198.51.100.7", "source_port": 40000, "destination_port": 443,
        "protocol": 6, "packets": 1, "bytes": 60, "start_time": start + n * dt.timedelta(minutes=20),
        "end_time": start + n * dt.timedelta(minutes=20), "action": "allow", "subscriber_id": "s1",
        "direction": "uplink",
    } for n in range(18)], exporter="test")  # three flows an hour for six hours
    with celery_worker():
        result = seal_destination_hours.delay().get(timeout=90)
    # The hours that ended at least an hour ago: the first five (the sixth ended under an hour ago, unless the
    # clock passed a full hour since the flows were stored).
    assert result["sealed"] in (5, 6)
    hours = [start + n * rollups.HOUR for n in range(result["sealed"])]
    assert sorted(FlowReportSealedHour.objects.values_list("hour", flat=True)) == hours
    assert list(FlowReportDestinationHourly.objects.order_by("hour").values_list(
        "hour", "destination_ip", "destination_port", "protocol", "direction", "action", "flows")) == [
        (hour, "198.51.100.7", 443, 6, "uplink", "allow", 3) for hour in hours]
    assert FlowReport.objects.count() == 18
