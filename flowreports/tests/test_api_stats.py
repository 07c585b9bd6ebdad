"""GET /api/v1/flow-reports/stats on a hand-built dataset: protocol counts and top uplink destinations."""

import pytest

from flowreports.tests.conftest import flow

pytestmark = pytest.mark.django_db
URL = "/api/v1/flow-reports/stats?start=2025-03-01&end=2025-03-01"


@pytest.fixture
def traffic(db):
    def many(count, **fields):
        for second in range(count):
            flow(start=f"2025-03-01T10:00:{second:02d}", **fields)

    many(5, subscriber_id="s1", source_ip="10.0.0.1", destination_ip="8.8.8.8", protocol=17, direction="uplink")
    many(3, subscriber_id="s1", source_ip="10.0.0.1", destination_ip="8.8.4.4", protocol=17, direction="uplink")
    many(4, subscriber_id="s2", source_ip="10.0.0.2", destination_ip="1.1.1.1", protocol=6, direction="uplink")
    many(2, subscriber_id="s2", source_ip="10.0.0.2", destination_ip="2001:db8:5::1", protocol=6,
         direction="uplink", action="drop")
    many(1, subscriber_id="s2", source_ip="10.0.0.2", destination_ip="2001:db8:5::2", protocol=6, direction="uplink")
    # Downlink flows to a busy address must not count as uplink destinations.
    many(9, subscriber_id="s1", source_ip="9.9.9.9", destination_ip="10.0.0.1", protocol=6, direction="downlink")
    many(2, source_ip="198.18.0.1", destination_ip="198.18.0.2", protocol=1)
    # Outside the window.
    flow(start="2025-03-02T00:00:00", source_ip="10.0.0.1", destination_ip="8.8.8.8", protocol=17, direction="uplink")


def test_protocols_by_count_and_top_uplink_destinations(viewer_client, traffic):
    assert viewer_client.get(URL).json() == {"result": {
        "protocols": [{"protocol": 6, "count": 16}, {"protocol": 17, "count": 8}, {"protocol": 1, "count": 2}],
        "top_destinations_uplink": [
            {"ip": "8.8.8.8", "count": 5}, {"ip": "1.1.1.1", "count": 4}, {"ip": "8.8.4.4", "count": 3},
            {"ip": "2001:db8:5::1", "count": 2}, {"ip": "2001:db8:5::2", "count": 1},
        ],
    }}


def test_direction_filter_applies_to_both_parts(viewer_client, traffic):
    downlink = viewer_client.get(f"{URL}&direction=downlink").json()["result"]
    assert downlink == {"protocols": [{"protocol": 6, "count": 9}], "top_destinations_uplink": []}
    uplink = viewer_client.get(f"{URL}&direction=uplink").json()["result"]
    assert uplink["protocols"] == [{"protocol": 17, "count": 8}, {"protocol": 6, "count": 7}]
    assert uplink["top_destinations_uplink"][0] == {"ip": "8.8.8.8", "count": 5}


def test_other_filters_narrow_the_stats(viewer_client, traffic):
    body = viewer_client.get(f"{URL}&subscriber_id=s2&action=allow").json()["result"]
    assert body == {
        "protocols": [{"protocol": 6, "count": 5}],
        "top_destinations_uplink": [{"ip": "1.1.1.1", "count": 4}, {"ip": "2001:db8:5::2", "count": 1}],
    }
    assert viewer_client.get(f"{URL}&destination=8.8.4.4:53").json()["result"]["protocols"] == []


def test_top_destinations_are_the_ten_largest(viewer_client, db):
    for host in range(1, 13):
        for second in range(host):
            flow(start=f"2025-03-01T11:{host:02d}:{second:02d}", source_ip="10.0.0.1",
                 destination_ip=f"203.0.{host}.1", protocol=6, direction="uplink", subscriber_id="s")
    top = viewer_client.get(URL).json()["result"]["top_destinations_uplink"]
    assert [(row["ip"], row["count"]) for row in top] == [(f"203.0.{h}.1", h) for h in range(12, 2, -1)]


def test_gdpr_mode_counts_destinations_per_masked_network(viewer_client, traffic, gdpr_on):
    top = viewer_client.get(URL).json()["result"]["top_destinations_uplink"]
    assert top == [
        # Ties are ordered by the (masked) address text.
        {"ip": "8.8.8.0", "count": 5}, {"ip": "1.1.1.0", "count": 4}, {"ip": "2001:db8:5::", "count": 3},
        {"ip": "8.8.4.0", "count": 3},
    ]


def test_gdpr_aggregate_merges_addresses_of_one_network(viewer_client, db, gdpr_on):
    for index, address in enumerate(["192.0.2.1", "192.0.2.200", "192.0.2.77", "198.51.100.1", "198.51.100.2",
                                     "::ffff:203.0.113.9"]):
        flow(start=f"2025-03-01T12:00:{index:02d}", source_ip="10.0.0.1", destination_ip=address, protocol=6,
             direction="uplink", subscriber_id="s")
    top = viewer_client.get(URL).json()["result"]["top_destinations_uplink"]
    assert top == [{"ip": "192.0.2.0", "count": 3}, {"ip": "198.51.100.0", "count": 2},
                   {"ip": "::ffff:203.0.113.0", "count": 1}]
