"""POST /api/v1/flow-reports: who may ingest, validation by item and field, all or nothing, size limit."""

import json

import pytest

from flowreports.api import views
from flowreports.models import FlowReport, SubscriberPrefix

pytestmark = pytest.mark.django_db
URL = "/api/v1/flow-reports"


def item(**overrides):
    value = {
        "subscriber_id": "001019756139935", "source_ip": "192.168.1.100", "destination_ip": "8.8.8.8",
        "source_port": 10000, "destination_port": 53, "protocol": 17, "packets": 100, "bytes": 5000,
        "start_time": "2025-02-22T10:30:00.000Z", "end_time": "2025-02-22T10:30:01.000Z",
        "direction": "uplink", "action": "allow", "sampling_rate": 1,
    }
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not ...}


def test_ingest_key_stores_a_batch_and_it_reads_back_identically(key_client, viewer_client):
    response = key_client("ingest").post(URL, [item(), item(bytes=7, start_time="2025-02-22T11:00:00.250Z",
                                                            end_time="2025-02-22T11:00:00.250Z")], format="json")
    assert response.status_code == 201
    assert response.json() == {"result": {"message": "Flow reports stored successfully", "stored": 2}}
    listed = viewer_client.get(f"{URL}?start=2025-02-22&end=2025-02-22").json()["result"]["items"]
    assert listed[1] == {"id": listed[1]["id"], **item()}
    assert listed[0]["start_time"] == "2025-02-22T11:00:00.250Z"
    assert set(FlowReport.objects.values_list("exporter", flat=True)) == {"http"}


def test_it_stores_the_sampling_rate_a_batch_gives_and_1_when_it_gives_none(key_client, viewer_client):
    batch = [item(sampling_rate=...), item(packets=512_000, bytes=25_600_000, sampling_rate=512)]
    assert key_client("ingest").post(URL, batch, format="json").status_code == 201
    listed = viewer_client.get(f"{URL}?start=2025-02-22&end=2025-02-22").json()["result"]["items"]
    # Packets and bytes are stored as sent: already scaled by the rate.
    assert sorted((i["sampling_rate"], i["packets"], i["bytes"]) for i in listed) == [
        (1, 100, 5000), (512, 512_000, 25_600_000)]


def test_missing_subscriber_and_direction_are_attributed(key_client):
    SubscriberPrefix.objects.create(cidr="100.64.0.0/10", subscriber_id="cgnat-user")
    batch = [
        item(subscriber_id=..., direction=..., source_ip="100.64.1.2", destination_ip="1.1.1.1"),
        item(subscriber_id="", direction="", source_ip="1.1.1.1", destination_ip="100.64.1.2"),
        item(subscriber_id=..., direction=..., source_ip="192.0.2.1", destination_ip="198.51.100.1"),
        item(subscriber_id="given", direction="downlink", source_ip="100.64.1.2"),
    ]
    assert key_client("operator").post(URL, batch, format="json").status_code == 201
    rows = list(FlowReport.objects.order_by("id").values_list("subscriber_id", "direction"))
    assert rows == [("cgnat-user", "uplink"), ("cgnat-user", "downlink"), ("", ""), ("given", "downlink")]


@pytest.mark.parametrize(("bad", "message"), [
    (item(bytes=-1), "[1].bytes: Ensure this value is greater than or equal to 0."),
    (item(bytes="5000"), "[1].bytes: A JSON integer is required."),
    (item(packets=True), "[1].packets: A JSON integer is required."),
    (item(packets=1.5), "[1].packets: A JSON integer is required."),
    (item(protocol=256), "[1].protocol: Ensure this value is less than or equal to 255."),
    (item(sampling_rate=0), "[1].sampling_rate: Ensure this value is greater than or equal to 1."),
    (item(sampling_rate="10"), "[1].sampling_rate: A JSON integer is required."),
    (item(source_port=65536), "[1].source_port: Ensure this value is less than or equal to 65535."),
    (item(source_ip="999.1.1.1"), "[1].source_ip: Enter a valid IPv4 or IPv6 address."),
    (item(destination_ip=...), "[1].destination_ip: This field is required."),
    (item(start_time="yesterday"), "[1].start_time: Datetime has wrong format."),
    (item(end_time="2025-02-22T10:29:59Z"), "[1].end_time: must not be before start_time."),
    (item(direction="sideways"), '[1].direction: "sideways" is not a valid choice.'),
    (item(action="deny"), '[1].action: "deny" is not a valid choice.'),
])
def test_one_bad_item_rejects_the_batch_naming_its_index_and_field(key_client, bad, message):
    response = key_client("ingest").post(URL, [item(), bad, item()], format="json")
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert FlowReport.objects.count() == 0


def test_every_bad_item_is_named(key_client):
    response = key_client("ingest").post(URL, [item(), item(bytes=-1), item(), item(protocol="x", packets=None)],
                                         format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "[1].bytes:" in error and "[3].protocol:" in error and "[3].packets:" in error


@pytest.mark.parametrize("body", [{"source_ip": "192.0.2.1"}, "flows", 42])
def test_the_body_must_be_a_list(key_client, body):
    response = key_client("ingest").post(URL, body, format="json")
    assert response.status_code == 400
    assert "Expected a list of items" in response.json()["error"]


def test_malformed_json_is_400(key_client):
    response = key_client("ingest").post(URL, "[{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("The body is not valid JSON: ")


def test_too_many_items_is_413_in_the_family_shape(key_client, monkeypatch):
    monkeypatch.setattr(views, "MAX_INGEST_ITEMS", 3)
    response = key_client("ingest").post(URL, [item()] * 4, format="json")
    assert response.status_code == 413
    assert response.json() == {"error": "At most 3 flow reports per request (got 4); split the batch."}
    assert key_client("ingest").post(URL, [item()] * 3, format="json").status_code == 201


def test_the_real_limit_is_ten_thousand_items_within_the_body_size_limit(key_client, settings):
    response = key_client("ingest").post(URL, [item()] * 10_001, format="json")
    assert response.json() == {"error": "At most 10,000 flow reports per request (got 10,001); split the batch."}
    assert FlowReport.objects.count() == 0
    response = key_client("ingest").post(URL, [item()] * 10_000, format="json")
    assert response.json()["result"]["stored"] == 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2**20
    body = json.dumps([item()] * 10_000).encode()
    response = key_client("ingest").post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"error": f"The body is {len(body)} bytes; it may be at most 1048576 bytes."}


def test_all_or_nothing_when_storing_fails(key_client, monkeypatch):
    from flowreports import services

    original = services.store_flows

    def store_then_fail(records, **kwargs):
        original(records, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "store_flows", store_then_fail)
    client = key_client("ingest")
    client.raise_request_exception = False
    assert client.post(URL, [item(), item()], format="json").status_code == 500
    assert FlowReport.objects.count() == 0


def test_viewers_may_not_ingest(viewer_client, key_client, api_client):
    assert viewer_client.post(URL, [item()], format="json").status_code == 403
    assert key_client("viewer").post(URL, [item()], format="json").status_code == 403
    assert api_client.post(URL, [item()], format="json").status_code == 401
    assert FlowReport.objects.count() == 0


def test_operators_may_ingest(operator_client):
    assert operator_client.post(URL, [item()], format="json").status_code == 201
