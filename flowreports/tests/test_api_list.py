"""GET /api/v1/flow-reports: envelope, item shape, order, paging, group_by, 400s and GDPR masking."""

import datetime as dt

import pytest
from django.utils import timezone

from flowreports import selectors
from flowreports.tests.conftest import WINDOW, A, B, C, flow

pytestmark = pytest.mark.django_db
URL = "/api/v1/flow-reports"


def test_list_envelope_and_item_shape(viewer_client, flows):
    body = viewer_client.get(f"{URL}?{WINDOW}&subscriber_id={A}&protocol=17").json()
    assert body == {"result": {"items": [{
        "id": flows["f1"].pk, "subscriber_id": A, "source_ip": "192.168.1.100", "destination_ip": "8.8.8.8",
        "source_port": 10000, "destination_port": 53, "protocol": 17, "packets": 100, "bytes": 5000,
        "start_time": "2025-02-22T10:30:00.000Z", "end_time": "2025-02-22T10:30:01.000Z",
        "direction": "uplink", "action": "allow", "sampling_rate": 1,
    }], "page": 1, "per_page": 25, "total_count": 1}}


def test_list_is_newest_first_and_pages_with_a_total(viewer_client, flows):
    first = viewer_client.get(f"{URL}?{WINDOW}&per_page=2").json()["result"]
    second = viewer_client.get(f"{URL}?{WINDOW}&per_page=2&page=2").json()["result"]
    third = viewer_client.get(f"{URL}?{WINDOW}&per_page=2&page=3").json()["result"]
    ids = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert ids == [flows[n].pk for n in ("f2", "f7", "f4", "f3", "f1")]
    assert first["total_count"] == second["total_count"] == 5
    assert (second["page"], second["per_page"]) == (2, 2)


def test_deep_pages_fetched_by_key_list_the_same_flows_in_the_same_order(viewer_client, flows, monkeypatch):
    shallow = [viewer_client.get(f"{URL}?{WINDOW}&per_page=2&page={page}").json()["result"] for page in (2, 3, 4)]
    monkeypatch.setattr(selectors, "DEFERRED_OFFSET", 1)
    deep = [viewer_client.get(f"{URL}?{WINDOW}&per_page=2&page={page}").json()["result"] for page in (2, 3, 4)]
    assert deep == shallow
    assert [[item["id"] for item in page["items"]] for page in deep] == [
        [flows["f4"].pk, flows["f3"].pk], [flows["f1"].pk], []]
    same_time = [flow(start="2025-02-22T06:00:00", protocol=6) for _ in range(3)]
    items = viewer_client.get(f"{URL}?{WINDOW}&protocol=6&per_page=2&page=3").json()["result"]["items"]
    # Ties on start_time are ordered by id, newest first, as on a shallow page.
    assert [item["id"] for item in items] == [same_time[2].pk, same_time[1].pk]


def test_milliseconds_are_kept_in_output_times(viewer_client, flows):
    items = viewer_client.get(f"{URL}?{WINDOW}&action=drop").json()["result"]["items"]
    assert items[0]["start_time"] == "2025-02-22T23:59:59.999Z"
    assert items[0]["end_time"] == "2025-02-23T00:00:00.999Z"


def test_default_window_is_the_last_seven_days(viewer_client, db):
    now = timezone.now()
    recent = flow(source_ip="192.0.2.1", destination_ip="192.0.2.2", protocol=6,
                  start=(now - dt.timedelta(days=6, hours=23)).replace(tzinfo=None).isoformat())
    flow(source_ip="192.0.2.1", destination_ip="192.0.2.2", protocol=6,
         start=(now - dt.timedelta(days=7, hours=1)).replace(tzinfo=None).isoformat())
    result = viewer_client.get(URL).json()["result"]
    assert [item["id"] for item in result["items"]] == [recent.pk]
    assert result["total_count"] == 1


@pytest.mark.parametrize(("query", "message"), [
    ("protocol=0", "Invalid value for 'protocol': must be between 1 and 255 (got '0')."),
    ("protocol=abc", "Invalid value for 'protocol': must be an integer (got 'abc')."),
    ("source=10.0.0.1:99999", "Invalid value for 'source': must have a port between 0 and 65535 "
                              "(got '10.0.0.1:99999')."),
    ("destination=host:80", "Invalid value for 'destination': must be IP, IP:port, [IPv6]:port or :port "
                            "(got 'host:80')."),
    ("direction=both", "Invalid value for 'direction': must be one of uplink, downlink (got 'both')."),
    ("action=reject", "Invalid value for 'action': must be one of allow, drop (got 'reject')."),
    ("start=2025-13-01", "Invalid value for 'start': must be a date in the form YYYY-MM-DD (got '2025-13-01')."),
    ("end=2025/02/01", "Invalid value for 'end': must be a date in the form YYYY-MM-DD (got '2025/02/01')."),
    ("start=2025-02-02&end=2025-02-01", "Invalid value for 'start': must not be after end (2025-02-01) "
                                        "(got '2025-02-02')."),
    ("page=0", "Invalid value for 'page': must be between 1 and 10000000 (got '0')."),
    ("per_page=101", "Invalid value for 'per_page': must be between 1 and 100 (got '101')."),
    ("group_by=week", "Invalid value for 'group_by': must be one of day, subscriber (got 'week')."),
    ("group_by=day&per_page=0", "Invalid value for 'per_page': must be between 1 and 100 (got '0')."),
    ("group_by=subscriber&page=x", "Invalid value for 'page': must be an integer (got 'x')."),
])
def test_bad_parameters_are_400_with_a_message_naming_them(viewer_client, flows, query, message):
    response = viewer_client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_stats_rejects_bad_filters_too(viewer_client, flows):
    response = viewer_client.get(f"{URL}/stats?source=:70000")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid value for 'source'")


def test_group_by_day_lists_days_ascending_with_flows_earliest_first(viewer_client, flows):
    body = viewer_client.get(f"{URL}?start=2025-02-21&end=2025-02-24&group_by=day").json()
    assert [list(group) for group in body["result"]] == [["2025-02-21"], ["2025-02-22"], ["2025-02-23"], ["2025-02-24"]]
    by_day = {key: [item["id"] for item in items] for group in body["result"] for key, items in group.items()}
    assert by_day["2025-02-22"] == [flows["f1"].pk, flows["f3"].pk, flows["f4"].pk]
    assert by_day["2025-02-23"] == [flows["f7"].pk, flows["f2"].pk]
    assert body["result"][1]["2025-02-22"][0]["start_time"] == "2025-02-22T10:30:00.000Z"


def test_group_by_subscriber_is_ascending_with_unattributed_flows_under_empty_key(viewer_client, flows):
    body = viewer_client.get(f"{URL}?start=2025-02-21&end=2025-02-24&group_by=subscriber").json()
    assert [next(iter(group)) for group in body["result"]] == ["", A, B, C]
    assert [item["id"] for item in body["result"][1][A]] == [flows[n].pk for n in ("f1", "f2", "f6")]


def test_group_by_applies_the_filters(viewer_client, flows):
    body = viewer_client.get(f"{URL}?{WINDOW}&group_by=subscriber&protocol=6&action=allow").json()
    assert body == {"result": [
        {A: [viewer_client.get(f"{URL}?{WINDOW}&source=1.1.1.1").json()["result"]["items"][0]]},
        {B: [body["result"][1][B][0]]},
        {C: [body["result"][2][C][0]]},
    ]}
    assert body["result"][1][B][0]["id"] == flows["f3"].pk


def test_group_by_pages_through_groups_and_caps_each_group(viewer_client, db, monkeypatch):
    monkeypatch.setattr(selectors, "GROUP_ITEM_LIMIT", 3)
    for day in range(1, 6):
        for minute in range(5):
            flow(subscriber_id=f"s{day}", source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6,
                 start=f"2025-01-0{day}T00:0{minute}:00")
    query = f"{URL}?start=2025-01-01&end=2025-01-05&group_by=day&per_page=2"
    pages = [viewer_client.get(f"{query}&page={page}").json()["result"] for page in (1, 2, 3, 4)]
    assert [[next(iter(group)) for group in page] for page in pages] == [
        ["2025-01-01", "2025-01-02"], ["2025-01-03", "2025-01-04"], ["2025-01-05"], [],
    ]
    first_day = pages[0][0]["2025-01-01"]
    assert [item["start_time"] for item in first_day] == [
        "2025-01-01T00:00:00.000Z", "2025-01-01T00:01:00.000Z", "2025-01-01T00:02:00.000Z",
    ]
    by_subscriber = viewer_client.get(
        f"{URL}?start=2025-01-01&end=2025-01-05&group_by=subscriber&per_page=4&page=2"
    ).json()["result"]
    assert [list(group) for group in by_subscriber] == [["s5"]]
    assert len(by_subscriber[0]["s5"]) == 3


def test_group_by_runs_a_bounded_number_of_queries(viewer_client, db, django_assert_max_num_queries):
    for day in range(1, 10):
        flow(source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6, start=f"2025-01-0{day}T12:00:00")
    # Whatever auth and privacy need, then one probe and one item query per group: not per flow.
    with django_assert_max_num_queries(4 + 4 + 4):
        body = viewer_client.get(f"{URL}?start=2025-01-01&end=2025-01-09&group_by=day&per_page=4").json()
    assert len(body["result"]) == 4


@pytest.mark.parametrize("probed", [500, 0], ids=["index probes", "distinct"])
def test_group_by_subscriber_pages_alike_by_probes_and_by_distinct(viewer_client, db, monkeypatch, probed):
    monkeypatch.setattr(selectors, "PROBED_SUBSCRIBERS", probed)
    for number, subscriber in enumerate(["b", "", "a", "c", "a", "d", "b"]):
        flow(subscriber_id=subscriber, source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6,
             start=f"2025-01-0{number % 3 + 1}T12:00:00")
    flow(subscriber_id="e", source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6, start="2025-01-09T12:00:00")
    query = f"{URL}?start=2025-01-01&end=2025-01-05&group_by=subscriber&per_page=2"
    pages = [viewer_client.get(f"{query}&page={page}").json()["result"] for page in (1, 2, 3, 4)]
    assert [[next(iter(group)) for group in page] for page in pages] == [["", "a"], ["b", "c"], ["d"], []]
    assert [len(group) for group in (pages[0][1]["a"], pages[1][0]["b"])] == [2, 2]


def test_group_by_subscriber_probes_a_bounded_number_of_queries(viewer_client, db, django_assert_max_num_queries):
    for number in range(9):
        flow(subscriber_id=f"s{number}", source_ip="10.0.0.1", destination_ip="10.0.0.2", protocol=6,
             start="2025-01-02T12:00:00")
    # Whatever auth and privacy need, then one probe and one item query per group of the page (and the
    # groups before it): not per flow.
    with django_assert_max_num_queries(4 + 6 + 3):
        body = viewer_client.get(f"{URL}?start=2025-01-01&end=2025-01-09&group_by=subscriber&per_page=3"
                                 "&page=2").json()
    assert [next(iter(group)) for group in body["result"]] == ["s3", "s4", "s5"]


def test_gdpr_mode_masks_both_flow_addresses_unless_permitted(viewer_client, flows, gdpr_on, django_user_model):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    item = viewer_client.get(f"{URL}?start=2025-02-23&end=2025-02-23&source=:443&protocol=6").json()
    items = {i["id"]: (i["source_ip"], i["destination_ip"]) for i in item["result"]["items"]}
    assert items[flows["f2"].pk] == ("1.1.1.0", "192.168.1.0")
    assert items[flows["f7"].pk] == ("2001:db8:1::", "2001:4860::")
    grouped = viewer_client.get(f"{URL}?{WINDOW}&group_by=day").json()["result"]
    assert {i["source_ip"] for g in grouped for items in g.values() for i in items} <= {
        "192.168.1.0", "1.1.1.0", "2001:db8:1::"}

    dpo = django_user_model.objects.create_user("dpo", password="x")
    dpo.groups.add(Group.objects.get(name="unmasked-ip"), Group.objects.get(name="viewers"))
    client = APIClient()
    client.force_authenticate(dpo)
    item = client.get(f"{URL}?{WINDOW}&source=2001:db8:1::5").json()["result"]["items"][0]
    assert (item["source_ip"], item["destination_ip"]) == ("2001:db8:1::5", "2001:4860::8888")


def test_reading_needs_a_credential_and_ingest_keys_cannot_read(api_client, key_client, flows):
    assert api_client.get(URL).status_code == 401
    assert key_client("ingest").get(URL).status_code == 403
    assert key_client("viewer").get(f"{URL}?{WINDOW}").json()["result"]["total_count"] == 5
