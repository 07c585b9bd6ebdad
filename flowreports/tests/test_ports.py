"""Which port a flow's end counts under in the daily endpoint rollups, in Python and in SQL alike."""

import pytest

from flowreports import ports
from flowreports.models import FlowReport
from flowreports.tests.conftest import flow


@pytest.mark.parametrize(("port", "folds", "counted"), [
    (None, False, ports.NO_PORT), (None, True, ports.NO_PORT),
    (0, True, 0), (443, True, 443), (1023, True, 1023),
    (1024, True, ports.OTHER_PORT), (51234, True, ports.OTHER_PORT), (65535, True, ports.OTHER_PORT),
    (1024, False, 1024), (51234, False, 51234),
])
def test_only_the_subscribers_own_ports_from_1024_up_fold(port, folds, counted):
    assert ports.folded(port, folds) == counted


@pytest.mark.django_db
def test_the_sql_expression_folds_stored_flows_as_python_does():
    cases = [(None, "downlink"), (53, "downlink"), (1023, "downlink"), (1024, "downlink"), (40000, "downlink"),
             (40000, "uplink"), (1024, "uplink"), (None, "uplink"), (40000, "")]
    for port, direction in cases:
        flow(source_ip="192.0.2.1", destination_ip="10.8.0.3", destination_port=port, protocol=6,
             start="2025-02-22T10:00:00", direction=direction)
    rows = FlowReport.objects.annotate(
        counted=ports.folded_expression("destination_port", direction="downlink"),
    ).order_by("id").values_list("destination_port", "direction", "counted")
    assert [counted for _port, _direction, counted in rows] == [-2, 53, 1023, -1, -1, 40000, 1024, -2, 40000]
    assert all(counted == ports.folded(port, direction == "downlink") for port, direction, counted in rows)
