"""The rollups equal the raw table after every write, and the API answers the same with and without them."""

import datetime as dt
import random
from collections import Counter

import pytest
from django.utils import timezone

from flowreports import ports, rollups, services
from flowreports.filtersets import FlowReportFilterSet
from flowreports.models import (
    FlowReport,
    FlowReportDestinationDaily,
    FlowReportDestinationHourly,
    FlowReportHourly,
    FlowReportSealedHour,
    FlowReportSourceDaily,
)
from flowreports.tests.conftest import flow
from vpnmonitor import retention

pytestmark = pytest.mark.django_db
URL = "/api/v1/flow-reports"


def sealed():
    return {rollups.floor_hour(hour) for hour in FlowReportSealedHour.objects.values_list("hour", flat=True)}


def raw_rollups():
    """Every rollup recomputed in Python from every raw row (the hourly destinations for the sealed hours)."""
    hourly, daily = Counter(), {endpoint: Counter() for endpoint in rollups.ENDPOINTS}
    destinations, sealed_hours = Counter(), sealed()
    for row in FlowReport.objects.all():
        hour = rollups.floor_hour(row.start_time)
        hourly[hour, row.protocol, row.direction, row.action] += 1
        for endpoint in rollups.ENDPOINTS:
            address, port = getattr(row, endpoint.ip), getattr(row, endpoint.port)
            if not address:
                continue
            # The subscriber's own end: its destination when downlink, its source when uplink.
            if port is None:
                port = -2
            elif port >= 1024 and row.direction == ("downlink" if endpoint.side == "destination" else "uplink"):
                port = -1
            daily[endpoint][hour.replace(hour=0), address, port, row.protocol, row.direction, row.action] += 1
            if endpoint is rollups.DESTINATION and hour in sealed_hours:
                destinations[hour, address, port, row.protocol, row.direction, row.action] += 1
    return dict(hourly), {endpoint.side: dict(counts) for endpoint, counts in daily.items()}, dict(destinations)


def stored_rollups():
    hourly = {
        (rollups.floor_hour(row.hour), row.protocol, row.direction, row.action): row.flows
        for row in FlowReportHourly.objects.all()
    }
    daily = {
        endpoint.side: {
            (rollups.floor_day(row.day), getattr(row, endpoint.ip), getattr(row, endpoint.port), row.protocol,
             row.direction, row.action): row.flows
            for row in endpoint.model.objects.all()
        }
        for endpoint in rollups.ENDPOINTS
    }
    destinations = {
        (rollups.floor_hour(row.hour), row.destination_ip, row.destination_port, row.protocol, row.direction,
         row.action): row.flows
        for row in FlowReportDestinationHourly.objects.all()
    }
    return hourly, daily, destinations


def assert_exact():
    assert stored_rollups() == raw_rollups()


def batch(count, *, now, days=9, seed=1):
    rng = random.Random(seed)
    remotes = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860::8888", "2001:db8::1", "8.8.8.9", "::ffff:1.2.3.4"]
    out = []
    for _ in range(count):
        start = now - dt.timedelta(seconds=rng.random() * days * 86400)
        uplink = rng.random() < 0.6
        inside, remote = f"10.8.0.{rng.randint(1, 20)}", rng.choice(remotes)
        # Downlink flows mostly go to a subscriber's ephemeral port, some to a service it runs (port 22).
        client_port = rng.choice([22, 40000, 40001, 51515])
        out.append({
            "source_ip": inside if uplink else remote, "destination_ip": remote if uplink else inside,
            "source_port": client_port if uplink else 443, "destination_port": 443 if uplink else client_port,
            "protocol": rng.choice([6, 6, 17, 1, 58]),
            "packets": 1, "bytes": 60, "start_time": start, "end_time": start,
            "action": "drop" if rng.random() < 0.2 else "allow",
            "subscriber_id": f"s{rng.randint(1, 5)}" if rng.random() < 0.9 else "",
            "direction": rng.choice(["uplink", "uplink", "downlink", ""]) if rng.random() < 0.95 else "",
        })
    return out


@pytest.fixture
def stored(db):
    """900 flows over 9 days; the hours that closed before the second batch are sealed, so it adds late flows."""
    now = timezone.now()
    services.store_flows(batch(600, now=now), exporter="test")
    rollups.seal_hours(now=now)
    services.store_flows(batch(300, now=now, seed=2), exporter="late")
    return now


def test_ingest_keeps_the_rollups_equal_to_the_raw_table(stored):
    assert FlowReport.objects.count() == 900
    # Every hour from the oldest flow's to the last that ended an hour before `stored` (now) is sealed.
    last = rollups.floor_hour(stored) - 2 * rollups.HOUR
    first = rollups.floor_hour(FlowReport.objects.earliest("start_time").start_time)
    assert sealed() == {first + n * rollups.HOUR for n in range((last - first) // rollups.HOUR + 1)}
    # The second batch added to sealed hours: its flows there are in the hourly destination rows.
    late = FlowReport.objects.filter(start_time__lt=last + rollups.HOUR, exporter="late", destination_ip__isnull=False)
    assert late.count() > 250
    assert sum(FlowReportDestinationHourly.objects.values_list("flows", flat=True)) == FlowReport.objects.filter(
        start_time__lt=last + rollups.HOUR, destination_ip__isnull=False).count()
    assert_exact()


def test_every_service_write_keeps_the_rollups_exact(stored):
    # In a sealed hour, three days back, then moved to another sealed hour.
    start = rollups.floor_hour(stored - dt.timedelta(days=3)) + dt.timedelta(minutes=30)
    assert rollups.floor_hour(start) in sealed()
    one = flow(source_ip="10.8.0.1", destination_ip="8.8.8.8", protocol=6, start=start.replace(tzinfo=None).isoformat(),
               direction="uplink")
    assert_exact()
    assert services.update_flows(FlowReport.objects.filter(pk=one.pk), direction="downlink",
                                 start_time=one.start_time - dt.timedelta(hours=5)) == 1
    assert_exact()
    udp = FlowReport.objects.filter(protocol=17).count()
    assert services.update_flows(FlowReport.objects.filter(protocol=17), direction="uplink", action="drop") == udp > 0
    assert_exact()
    assert services.delete_flows(FlowReport.objects.filter(pk=FlowReport.objects.filter(protocol=6)[:1].get().pk)) == 1
    assert services.delete_flows(FlowReport.objects.filter(pk=one.pk)) == 1
    icmp = FlowReport.objects.filter(protocol=1).count()
    assert services.delete_flows(FlowReport.objects.filter(protocol=1)) == icmp > 0
    assert_exact()
    services.add_flows([FlowReport(**{**row, "exporter": "x"}) for row in batch(50, now=stored)])
    assert_exact()


def test_a_naive_start_time_counts_in_the_hour_it_is_stored_in(stored, settings):
    """Django stores a naive time as one in TIME_ZONE: the rollups count it there too."""
    settings.TIME_ZONE = "Europe/Berlin"
    start = rollups.floor_hour(stored - dt.timedelta(days=2))
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        [one] = services.add_flows([FlowReport(
            source_ip="10.8.0.1", destination_ip="8.8.8.8", destination_port=443, protocol=6, packets=1, bytes=60,
            start_time=start.replace(tzinfo=None) + dt.timedelta(minutes=30), end_time=start, direction="uplink")])
    one.refresh_from_db()
    assert one.start_time != start + dt.timedelta(minutes=30)  # an hour or two earlier in UTC
    assert_exact()
    services.delete_flows(FlowReport.objects.filter(pk=one.pk))
    assert_exact()


def test_deleting_flows_in_the_admin_keeps_the_rollups_exact(stored, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    tcp = list(FlowReport.objects.filter(protocol=6).order_by("pk").values_list("pk", flat=True)[:5])
    response = client.post("/admin/flowreports/flowreport/",
                           {"action": "delete_selected", "_selected_action": tcp, "post": "yes"})
    assert response.status_code == 302
    assert not FlowReport.objects.filter(pk__in=tcp).exists()
    assert FlowReport.objects.count() == 895
    assert_exact()
    one = FlowReport.objects.filter(protocol=17).order_by("pk").first()
    assert client.post(f"/admin/flowreports/flowreport/{one.pk}/delete/", {"post": "yes"}).status_code == 302
    assert FlowReport.objects.count() == 894
    assert_exact()


def test_clearing_empties_the_rollups(stored, operator_client):
    assert operator_client.delete(URL).status_code == 200
    assert not FlowReport.objects.exists()
    assert stored_rollups() == ({}, {"destination": {}, "source": {}}, {}) == raw_rollups()
    assert sealed()  # a sealed hour without flows has no rows: it stays sealed


@pytest.mark.parametrize("days", [1, 3, 5, 8])
def test_pruning_mid_hour_keeps_the_rollups_exact(stored, days):
    retention.set_retention_days("flowreports", days)
    # A cutoff in the middle of an hour and of a day: the boundary hour keeps only its later flows.
    pruned = retention.prune("flowreports", now=stored.replace(minute=31, second=7), batch_size=97)
    assert pruned > 0 or days == 8
    assert_exact()


def test_rebuild_reproduces_the_rollups(stored):
    before = stored_rollups()
    rollups.rebuild()
    assert stored_rollups() == before == raw_rollups()


def _queries(now):
    today = now.date()
    windows = [
        "", f"start={(today - dt.timedelta(days=6)).isoformat()}&end={today.isoformat()}",
        f"start={(today - dt.timedelta(days=3)).isoformat()}", f"end={(today - dt.timedelta(days=2)).isoformat()}",
        f"start={today.isoformat()}&end={today.isoformat()}", "start=2000-01-01&end=9999-12-31",
    ]
    filters = ["", "protocol=6", "direction=uplink", "direction=downlink", "action=drop",
               "protocol=17&direction=uplink&action=allow", "subscriber_id=s1", "destination=8.8.8.8",
               "source=:40000&protocol=6", "destination=8.8.8.8:443", "destination=[2001:4860::8888]:443",
               "destination=:443&protocol=6", "destination=10.8.0.3", "destination=10.8.0.3:22",
               "destination=10.8.0.3:40000", "destination=:51515&direction=downlink",
               "destination=9.9.9.9:443&direction=uplink&action=allow", "destination=8.8.8.8:8443",
               "destination=8.8.8.8&subscriber_id=s2", "source=8.8.8.8:443", "source=10.8.0.3",
               "source=10.8.0.3:22&direction=uplink", "source=10.8.0.3:40000", "source=:443&action=drop",
               "source=[2001:4860::8888]:443&direction=downlink", "source=8.8.8.8&destination=10.8.0.3"]
    return [f"{window}&{extra}".strip("&") for window in windows for extra in filters]


@pytest.mark.parametrize("gdpr", [False, True])
def test_api_answers_equal_the_raw_table(stored, viewer_client, monkeypatch, gdpr, settings):
    if gdpr:
        monkeypatch.setattr("flowreports.api.views.should_mask", lambda request: True)
    queries = _queries(stored)
    with_rollups = {q: (viewer_client.get(f"{URL}?{q}").json(), viewer_client.get(f"{URL}/stats?{q}").json())
                    for q in queries}
    monkeypatch.setattr(FlowReportFilterSet, "rollup_dimensions", lambda self: None)
    monkeypatch.setattr(FlowReportFilterSet, "endpoint_rollup", lambda self: None)
    for q in queries:
        raw = (viewer_client.get(f"{URL}?{q}").json(), viewer_client.get(f"{URL}/stats?{q}").json())
        assert with_rollups[q] == raw, q
    totals = [with_rollups[q][0]["result"]["total_count"] for q in queries]
    assert max(totals) > 0


def test_windows_shorter_than_an_hour_and_partial_edges():
    now = timezone.now()
    services.store_flows(batch(200, now=now, days=0.1, seed=3), exporter="test")
    from flowreports import selectors

    queryset = FlowReport.objects.all()
    for minutes in (1, 20, 45, 59, 61, 95, 125, 170):
        start = now - dt.timedelta(minutes=minutes)
        window = (start, now)
        expected = queryset.filter(start_time__range=window).count()
        assert selectors.window_count(queryset.filter(start_time__range=window), window, {}) == expected
    # Windows that end mid-hour in the past: the rest of the last hour holds flows that must not count.
    for first, last in ((170, 50), (130, 10), (100, 80), (140, 75)):
        window = (now - dt.timedelta(minutes=first), now - dt.timedelta(minutes=last))
        for dimensions in ({}, {"protocol": 6}, {"direction": "uplink", "action": "allow"}):
            filtered = queryset.filter(start_time__range=window, **dimensions)
            assert selectors.window_count(filtered, window, dimensions) == filtered.count(), (first, last)


def seal_all_but_one_day(now):
    """Seal every closed hour, then unseal the day before yesterday with its rows inflated: an hour without
    a seal must never be read, so reads over partial days both use sealed hours and skip unsealed ones."""
    from django.db.models import F

    assert rollups.seal_hours(now=now) > 48
    day = rollups.floor_day(now - dt.timedelta(days=2))
    FlowReportSealedHour.objects.filter(hour__gte=day, hour__lt=day + rollups.DAY).delete()
    assert FlowReportDestinationHourly.objects.filter(hour__gte=day, hour__lt=day + rollups.DAY).update(
        flows=F("flows") + 5)


@pytest.mark.parametrize("endpoint", rollups.ENDPOINTS, ids=lambda endpoint: endpoint.side)
def test_endpoint_counts_over_partial_days_equal_the_raw_table(endpoint):
    now = timezone.now()
    services.store_flows(batch(400, now=now, days=3, seed=4), exporter="test")
    seal_all_but_one_day(now)
    from flowreports import selectors

    queryset = FlowReport.objects.all()
    endpoints = [("8.8.8.8", None), ("8.8.8.8", 443), (None, 443), ("10.8.0.3", 22), ("10.8.0.3", 40000),
                 (None, 51515), ("2001:4860::8888", 443), ("9.9.9.9", 8443)]
    # Windows from minutes to days, ending now, in the future or mid-day in the past: partial days at one
    # edge or both, shorter or longer than half a day.
    for first, last in ((0.01, 0), (0.3, 0), (0.7, 0), (1.5, 0), (2.9, 0), (2.6, 1.2), (1.9, 0.4), (3, 2.1),
                        (0.2, -0.3), (1.1, -0.9)):
        window = (now - dt.timedelta(days=first), now - dt.timedelta(days=last))
        for dimensions in ({}, {"protocol": 6}, {"direction": "downlink"}, {"direction": "uplink", "action": "allow"}):
            for address, port in endpoints:
                where = {endpoint.ip: address} if address else {}
                if port is not None:
                    where[endpoint.port] = port
                filtered = queryset.filter(start_time__range=window, **dimensions, **where)
                counted = selectors.endpoint_count(filtered, window, dimensions, endpoint, address, port)
                assert counted == filtered.count(), (first, last, dimensions, address, port)


@pytest.mark.parametrize("mask", [False, True], ids=["addresses", "masked"])
def test_stats_over_partial_hours_and_days_equal_the_raw_table(mask):
    now = timezone.now()
    services.store_flows(batch(500, now=now, days=3, seed=5), exporter="test")
    seal_all_but_one_day(now)
    from flowreports import selectors

    queryset = FlowReport.objects.all()
    endpoints = [("8.8.8.8", None), ("8.8.8.8", 443), (None, 443), ("10.8.0.3", 22), ("10.8.0.3", 40000),
                 ("2001:4860::8888", 443), ("10.8.0.3", None)]
    # Edges shorter and longer than the rest of their day, so both the raw edge and the day's rollup less
    # the rest of the day are used; windows ending now, mid-day in the past and in the future.
    for first, last in ((0.01, 0), (0.3, 0), (0.8, 0), (1.5, 0), (2.9, 0), (2.6, 1.2), (1.9, 0.4), (2.2, 1.9),
                        (0.2, -0.3), (1.1, -0.9)):
        window = (now - dt.timedelta(days=first), now - dt.timedelta(days=last))
        for dimensions in ({}, {"protocol": 6}, {"direction": "uplink", "action": "allow"}, {"action": "drop"}):
            for endpoint in (None, *[(rollups.DESTINATION, *e) for e in endpoints], *[
                    (rollups.SOURCE, *e) for e in endpoints]):
                side, address, port = endpoint or (None, None, None)
                where = {side.ip: address} if address else {}
                if port is not None:
                    where[side.port] = port
                filtered = queryset.filter(start_time__range=window, **dimensions, **where)
                stats = selectors.rollup_stats(filtered, window, dimensions, endpoint=endpoint, mask=mask)
                assert stats == selectors.flow_stats(filtered, mask=mask), (first, last, dimensions, endpoint)
                assert sum(row["count"] for row in stats["protocols"]) == filtered.count()


def test_destination_total_count_is_read_from_the_rollup_unless_a_folded_port_could_match(stored, viewer_client):
    """Adding to the rollup behind the raw table's back shows which totals come from it."""
    today = stored.date()
    window = f"start={(today - dt.timedelta(days=12)).isoformat()}&end={today.isoformat()}"

    def totals():
        return {q: viewer_client.get(f"{URL}?{window}&{q}").json()["result"]["total_count"]
                for q in ("destination=8.8.8.8:443", "destination=8.8.8.8", "destination=:443",
                          "destination=10.8.0.3:22", "destination=10.8.0.3:40000", "destination=8.8.8.8:8443")}

    before = totals()
    assert before["destination=8.8.8.8:443"] == FlowReport.objects.filter(
        destination_ip="8.8.8.8", destination_port=443).count() > 0
    assert before["destination=10.8.0.3:40000"] == FlowReport.objects.filter(
        destination_ip="10.8.0.3", destination_port=40000).count() > 0
    day = rollups.floor_day(stored - dt.timedelta(days=1))  # GRE (47): no stored flow has that protocol
    for address, port, direction in (("8.8.8.8", 443, "uplink"), ("10.8.0.3", 22, "downlink"),
                                     ("10.8.0.3", ports.OTHER_PORT, "downlink")):
        FlowReportDestinationDaily.objects.create(day=day, destination_ip=address, destination_port=port,
                                                  protocol=47, direction=direction, action="allow", flows=1000)
    after = totals()
    assert after["destination=8.8.8.8:443"] == before["destination=8.8.8.8:443"] + 1000
    assert after["destination=8.8.8.8"] == before["destination=8.8.8.8"] + 1000
    assert after["destination=:443"] == before["destination=:443"] + 1000
    assert after["destination=10.8.0.3:22"] == before["destination=10.8.0.3:22"] + 1000
    # Port 40000 of a subscriber's address may hide among its folded downlink ports: counted raw.
    assert after["destination=10.8.0.3:40000"] == before["destination=10.8.0.3:40000"]
    # 8.8.8.8 has no folded ports (never a downlink destination here), so port 8443 is known to be 0.
    assert after["destination=8.8.8.8:8443"] == before["destination=8.8.8.8:8443"] == 0


def test_stats_with_a_destination_are_read_from_the_rollup_unless_a_folded_port_could_match(stored, viewer_client):
    """As above, for /stats: protocols and top destinations with a destination filter come from its rollup."""
    today = stored.date()
    window = f"start={(today - dt.timedelta(days=12)).isoformat()}&end={today.isoformat()}"

    def stats(query):
        return viewer_client.get(f"{URL}/stats?{window}&{query}").json()["result"]

    before = {q: stats(q) for q in ("destination=8.8.8.8:443", "destination=10.8.0.3:40000")}
    day = rollups.floor_day(stored - dt.timedelta(days=1))
    for address, port, direction in (("8.8.8.8", 443, "uplink"), ("10.8.0.3", ports.OTHER_PORT, "downlink")):
        FlowReportDestinationDaily.objects.create(day=day, destination_ip=address, destination_port=port,
                                                  protocol=47, direction=direction, action="allow", flows=1000)
    after = stats("destination=8.8.8.8:443")
    assert after["protocols"][0] == {"protocol": 47, "count": 1000}
    assert after["protocols"][1:] == before["destination=8.8.8.8:443"]["protocols"]
    uplink = before["destination=8.8.8.8:443"]["top_destinations_uplink"]
    assert after["top_destinations_uplink"] == [{"ip": "8.8.8.8", "count": uplink[0]["count"] + 1000}]
    # A subscriber's port from 1024 up may hide among its folded ports: counted raw (the rollup has none).
    assert stats("destination=10.8.0.3:40000") == before["destination=10.8.0.3:40000"]
    assert before["destination=10.8.0.3:40000"]["protocols"]


def test_stats_with_a_source_read_its_rollup_and_list_destinations_only_if_it_has_uplink_flows(
        stored, viewer_client):
    """As above: a remote server as the source has no uplink flows, so its raw flows are not read for them."""
    today = stored.date()
    window = f"start={(today - dt.timedelta(days=12)).isoformat()}&end={today.isoformat()}"
    day = rollups.floor_day(stored - dt.timedelta(days=1))
    for address, direction in (("9.9.9.7", "downlink"), ("10.8.0.99", "uplink")):
        services.store_flows([{
            "source_ip": address, "destination_ip": "9.9.9.9", "source_port": 443, "destination_port": 443,
            "protocol": 6, "packets": 1, "bytes": 60, "start_time": day + dt.timedelta(hours=3),
            "end_time": day + dt.timedelta(hours=3), "action": "allow", "subscriber_id": "s1", "direction": direction,
        }], exporter="test")
        FlowReportSourceDaily.objects.create(day=day, source_ip=address, source_port=443, protocol=47,
                                             direction="uplink", action="allow", flows=1000)

    def stats(address):
        return viewer_client.get(f"{URL}/stats?{window}&source={address}").json()["result"]

    # The remote's rollup now claims uplink flows, so its raw flows are read for destinations: none are uplink.
    assert stats("9.9.9.7") == {"protocols": [{"protocol": 47, "count": 1000}, {"protocol": 6, "count": 1}],
                                "top_destinations_uplink": []}
    assert stats("10.8.0.99")["top_destinations_uplink"] == [{"ip": "9.9.9.9", "count": 1}]
    # With no uplink flow in its rollup, a source's destinations are not looked for in the raw flows.
    FlowReportSourceDaily.objects.filter(source_ip="10.8.0.99", direction="uplink").update(flows=0)
    assert stats("10.8.0.99") == {"protocols": [], "top_destinations_uplink": []}


def test_source_total_count_is_read_from_the_rollup_unless_a_folded_port_could_match(stored, viewer_client):
    today = stored.date()
    window = f"start={(today - dt.timedelta(days=12)).isoformat()}&end={today.isoformat()}"

    def totals():
        return {q: viewer_client.get(f"{URL}?{window}&{q}").json()["result"]["total_count"]
                for q in ("source=8.8.8.8:443", "source=10.8.0.3:22", "source=10.8.0.3:40000")}

    before = totals()
    assert before["source=8.8.8.8:443"] == FlowReport.objects.filter(source_ip="8.8.8.8", source_port=443).count() > 0
    day = rollups.floor_day(stored - dt.timedelta(days=1))  # GRE (47): no stored flow has that protocol
    for address, port, direction in (("8.8.8.8", 443, "downlink"), ("10.8.0.3", 22, "uplink"),
                                     ("10.8.0.3", ports.OTHER_PORT, "uplink")):
        FlowReportSourceDaily.objects.create(day=day, source_ip=address, source_port=port, protocol=47,
                                             direction=direction, action="allow", flows=1000)
    after = totals()
    assert after["source=8.8.8.8:443"] == before["source=8.8.8.8:443"] + 1000
    assert after["source=10.8.0.3:22"] == before["source=10.8.0.3:22"] + 1000
    assert after["source=10.8.0.3:40000"] == before["source=10.8.0.3:40000"] > 0


def test_rollup_tables_leave_room_on_each_page_for_their_updates_on_postgresql():
    """Every stored batch updates rollup rows; free space on the page lets PostgreSQL update them in place."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("fillfactor is a PostgreSQL storage parameter")
    tables = [model._meta.db_table for model in (FlowReportHourly, FlowReportSourceDaily, FlowReportDestinationDaily)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", [tables])
        options = dict(cursor.fetchall())
    assert options == dict.fromkeys(tables, ["fillfactor=50"])


def _flows_through_the_day(day, *, count=96):
    """Uplink TCP flows to 198.51.100.1:443 every quarter of an hour of a day, from 10.8.0.1."""
    return [{
        "source_ip": "10.8.0.1", "destination_ip": "198.51.100.1", "source_port": 40000, "destination_port": 443,
        "protocol": 6, "packets": 1, "bytes": 60, "start_time": day + n * dt.timedelta(minutes=15),
        "end_time": day + n * dt.timedelta(minutes=15), "action": "allow", "subscriber_id": "s1",
        "direction": "uplink",
    } for n in range(count)]


@pytest.mark.parametrize(("clock", "hour", "sign"), [
    # The window starts at 18:30: its first day is 18:30-24:00, added as the hours 19-23 and raw 18:30-19:00.
    ("18:30", 20, 1),
    # It starts at 05:30: the day's rollup less 00:00-05:30, the hours 00-04 and raw 05:00-05:30.
    ("05:30", 2, -1),
])
def test_default_window_stats_count_the_first_day_from_sealed_hours(viewer_client, clock, hour, sign):
    """Changing an hourly destination row behind the raw table's back shows that the default window (now - 7 d
    to now) reads the whole hours of its first day from them, and only while the hour is sealed."""
    from unittest import mock

    now = dt.datetime.fromisoformat(f"2026-11-20T{clock}:00+00:00")
    first_day = rollups.floor_day(now - dt.timedelta(days=7))
    services.store_flows(_flows_through_the_day(first_day) + _flows_through_the_day(first_day + rollups.DAY),
                         exporter="test")
    with mock.patch.object(timezone, "now", lambda: now):
        # From the first flow's hour to the last that ended an hour ago: 16:00 (at 18:30) or 03:00 (at 05:30).
        assert rollups.seal_hours(now=now) == 7 * 24 + int(clock[:2]) - 1

        def stats(query=""):
            return viewer_client.get(f"{URL}/stats?{query}").json()["result"]

        window = FlowReport.objects.filter(start_time__gte=now - dt.timedelta(days=7))
        expected = window.count()
        assert expected == (96 - 4 * (int(clock[:2]) + 1) + 2) + 96  # the first day's flows from the start, then all
        assert stats() == {"protocols": [{"protocol": 6, "count": expected}],
                           "top_destinations_uplink": [{"ip": "198.51.100.1", "count": expected}]}
        at = first_day + hour * rollups.HOUR
        FlowReportDestinationHourly.objects.filter(hour=at).update(flows=4 + 3)
        changed = expected + sign * 3
        for query in ("", "destination=198.51.100.1", "destination=:443", "destination=198.51.100.1:443"):
            assert stats(query) == {
                "protocols": [{"protocol": 6, "count": changed if query else expected}],
                "top_destinations_uplink": [{"ip": "198.51.100.1", "count": changed}],
            }, query
        total = viewer_client.get(f"{URL}?destination=198.51.100.1:443").json()["result"]["total_count"]
        assert total == changed
        # Without its seal the hour is counted from the raw flows again.
        FlowReportSealedHour.objects.filter(hour=at).delete()
        assert stats("destination=:443")["protocols"] == [{"protocol": 6, "count": expected}]
        assert viewer_client.get(f"{URL}?destination=:443").json()["result"]["total_count"] == expected


def test_seal_hours_counts_closed_hours_newest_first_and_drops_seals_before_the_oldest_flow():
    now = dt.datetime(2026, 11, 20, 12, 10, tzinfo=dt.UTC)
    day = rollups.floor_day(now)
    services.store_flows(_flows_through_the_day(day, count=48), exporter="test")  # 00:00 to 11:45
    # Only hours that ended an hour ago: 10:00 (ended 11:00) is the last; 3 at most, newest first.
    assert rollups.seal_hours(now=now, limit=3) == 3
    assert sealed() == {day + h * rollups.HOUR for h in (8, 9, 10)}
    assert rollups.seal_hours(now=now) == 8
    assert rollups.seal_hours(now=now) == 0
    assert sealed() == {day + h * rollups.HOUR for h in range(11)}
    assert_exact()
    assert sorted(FlowReportDestinationHourly.objects.values_list("hour", "flows")) == [
        (day + h * rollups.HOUR, 4) for h in range(11)]
    # An hour later 11:00 has ended an hour ago too.
    assert rollups.seal_hours(now=now + rollups.HOUR) == 1
    # Once the first hours' flows are gone, their seals (which have nothing left to count) go with them.
    services.delete_flows(FlowReport.objects.filter(start_time__lt=day + 3 * rollups.HOUR))
    assert_exact()
    assert rollups.seal_hours(now=now + rollups.HOUR) == 0
    assert sealed() == {day + h * rollups.HOUR for h in range(3, 12)}
    services.delete_flows(FlowReport.objects.all())
    assert rollups.seal_hours(now=now) == 0
    assert_exact()


def test_the_seal_task_reports_what_it_sealed_and_runs_once_at_a_time():
    from flowreports.tasks import seal_destination_hours
    from vpnmonitor.jobs import exclusive

    services.store_flows(batch(100, now=timezone.now(), days=0.5, seed=7), exporter="test")
    with exclusive("seal_destination_hours") as acquired:
        assert acquired
        assert seal_destination_hours() == {"skipped": "another seal_destination_hours is running"}
    result = seal_destination_hours()
    assert 9 <= result["sealed"] <= 11  # 12 hours of flows, less the last two (closed under an hour ago, or open)
    assert seal_destination_hours() == {"sealed": 0}
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_collector_batches_keep_sealed_hours_exact(stored):
    """Late flows from the UDP collector: on PostgreSQL its own encoder counts them (COPY path)."""
    from flowreports.collector.decode import FlowRecord
    from flowreports.models import SubscriberPrefix

    SubscriberPrefix.objects.create(cidr="10.8.0.0/24", subscriber_id="vpn")
    rng = random.Random(8)
    records = []
    for _ in range(400):
        start = stored - dt.timedelta(hours=rng.random() * 200)
        micros = int(start.timestamp() * 1_000_000)
        inside, remote = f"10.8.0.{rng.randint(1, 20)}", rng.choice(["8.8.8.8", "2001:db8::1", "192.0.2.9"])
        uplink = rng.random() < 0.5
        records.append(FlowRecord(
            exporter="192.0.2.1", observation_domain=0, source_ip=inside if uplink else remote,
            destination_ip=remote if uplink else inside, source_port=rng.choice([40000, 22]),
            destination_port=rng.choice([443, 22, 51515]), protocol=rng.choice([6, 17]), packets=1, bytes=60,
            start_us=micros, end_us=micros, action=rng.choice(["allow", "drop"]), version=10,
        ))
    # Then a batch of one past hour, as from an exporter whose clock is behind: the only hour of its day.
    past = int((rollups.floor_hour(stored) - dt.timedelta(days=2, hours=3)).timestamp() * 1_000_000)
    one_hour = [record._replace(start_us=past + n * 7_000_000, end_us=past + n * 7_000_000)
                for n, record in enumerate(records[:300])]
    sink = services.FlowSink()
    try:
        assert sink(records).stored == 400
        assert_exact()
        assert sink(one_hour).stored == 300
    finally:
        sink.close()
    in_sealed = [r for r in records if rollups.floor_hour(dt.datetime.fromtimestamp(r.start_us / 1e6, dt.UTC))
                 in sealed()]
    assert len(in_sealed) > 300
    assert_exact()
    hour = rollups.floor_hour(dt.datetime.fromtimestamp(past / 1e6, dt.UTC))
    assert hour in sealed()
    assert sum(FlowReportDestinationHourly.objects.filter(hour=hour).values_list("flows", flat=True)) == (
        FlowReport.objects.filter(start_time__gte=hour, start_time__lt=hour + rollups.HOUR).count()) >= 300


class OpenWrite:
    """store_flows(flows) in a transaction of its own, on another thread, left open until close()."""

    def __init__(self, flows):
        import threading

        self.inserted, self.release, self.failures = threading.Event(), threading.Event(), []
        self.thread = threading.Thread(target=self._write, args=(flows,))
        self.thread.start()
        assert self.inserted.wait(30)

    def _write(self, flows):
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                services.store_flows(flows, exporter="test")
                self.inserted.set()
                self.release.wait(30)
        except Exception as error:  # noqa: BLE001 - reported by close()
            self.failures.append(error)
        finally:
            connection.close()

    def close(self):
        self.release.set()
        self.thread.join(30)
        assert self.failures == []


def in_thread(function):
    """Start function() on another thread (with a connection of its own); returns (thread, results)."""
    import threading

    from django.db import connection

    results = []

    def run():
        try:
            results.append(function())
        except Exception as error:  # noqa: BLE001 - reported by the caller's assertions
            results.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def postgresql_only():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes one writer at a time")


@pytest.mark.django_db(transaction=True)
def test_sealing_waits_for_a_writer_of_the_hour_under_way_and_counts_its_flows():
    """A writer that found its hour unsealed and has not committed yet: the seal must wait for it and count its
    flows, or they would be in neither the seal's count nor the writer's (PostgreSQL reads in parallel)."""
    postgresql_only()
    now = timezone.now()
    hour = rollups.floor_hour(now) - 5 * rollups.HOUR
    flows = _flows_through_the_day(hour, count=4)  # four flows in one closed hour
    services.store_flows(flows[:1], exporter="test")
    write = OpenWrite(flows[1:])
    sealing, results = in_thread(lambda: rollups.seal_hours(now=now))
    sealing.join(1)  # long enough to seal four hours of four flows, had it not waited
    waited = sealing.is_alive()
    write.close()
    sealing.join(30)
    assert waited
    assert results == [4]
    assert sealed() == {hour + n * rollups.HOUR for n in range(4)}
    assert FlowReportDestinationHourly.objects.get(hour=hour).flows == 4
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_sealing_does_not_wait_for_writers_of_other_hours():
    """The collector writing the current hour is never held up by a seal of an older one, nor the seal by it."""
    postgresql_only()
    now = timezone.now()
    hour = rollups.floor_hour(now) - 5 * rollups.HOUR
    services.store_flows(_flows_through_the_day(hour, count=4), exporter="test")
    write = OpenWrite(_flows_through_the_day(rollups.floor_hour(now), count=2))
    try:
        sealing, results = in_thread(lambda: rollups.seal_hours(now=now))
        sealing.join(10)
        finished = not sealing.is_alive()
    finally:
        write.close()
    sealing.join(30)
    assert finished
    assert results == [4]
    assert FlowReportDestinationHourly.objects.get(hour=hour).flows == 4
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_a_write_of_many_hours_holds_seals_off_until_it_ends(monkeypatch):
    """More than LOCKED_HOURS hours take the lock of every hour: a seal meanwhile gives up for that run (it
    never waits while holding a lock, so the two cannot deadlock), and the next run counts the write."""
    postgresql_only()
    now = timezone.now()
    first = rollups.floor_hour(now) - 60 * rollups.HOUR
    services.store_flows(_flows_through_the_day(first, count=1), exporter="test")
    # One flow in each of the next LOCKED_HOURS + 1 hours.
    many = [{**row, "start_time": first + n * rollups.HOUR, "end_time": first + n * rollups.HOUR}
            for n, row in enumerate(_flows_through_the_day(first, count=rollups.LOCKED_HOURS + 1), start=1)]
    monkeypatch.setattr(rollups, "SEAL_ATTEMPTS", 2)
    monkeypatch.setattr(rollups, "SEAL_RETRY_SECONDS", 0.05)
    write = OpenWrite(many)
    try:
        sealing, results = in_thread(lambda: rollups.seal_hours(now=now))
        sealing.join(30)
        assert results == [0]
    finally:
        write.close()
    assert rollups.seal_hours(now=now) == 59
    assert sum(FlowReportDestinationHourly.objects.values_list("flows", flat=True)) == 1 + rollups.LOCKED_HOURS + 1
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_a_seal_between_a_writers_insert_and_its_look_at_the_seals_is_found_by_the_writer(monkeypatch):
    """The other order: the seal counts the hour without the writer's flows (not committed yet), so the writer,
    which takes the hour's lock and reads the seals only after the seal committed, must add them itself."""
    import threading

    postgresql_only()
    now = timezone.now()
    hour = rollups.floor_hour(now) - 5 * rollups.HOUR
    flows = _flows_through_the_day(hour, count=4)
    services.store_flows(flows[:1], exporter="test")
    inserted, go, real = threading.Event(), threading.Event(), rollups.sealed_among

    def after_the_insert(hours, **kwargs):
        inserted.set()
        assert go.wait(30)
        return real(hours, **kwargs)

    monkeypatch.setattr(rollups, "sealed_among", after_the_insert)
    writing, results = in_thread(lambda: services.store_flows(flows[1:], exporter="test"))
    assert inserted.wait(30)
    assert rollups.seal_hours(now=now) == 4  # the hour has one committed flow so far
    assert FlowReportDestinationHourly.objects.get(hour=hour).flows == 1
    go.set()
    writing.join(30)
    assert results == [services.StoreResult(3, 0)]
    assert FlowReportDestinationHourly.objects.get(hour=hour).flows == 4
    assert_exact()


@pytest.mark.django_db(transaction=True)
def test_a_write_waiting_for_a_seal_holds_up_no_write_of_other_hours():
    """A batch with a late flow of the hour being sealed waits for the seal, but it locks no rollup row before
    that: a batch of the current hour alone, which adds to the same rows, goes through meanwhile."""
    import threading

    from django.db import connection, transaction

    postgresql_only()
    now = timezone.now()
    current = rollups.floor_hour(now)
    hour = current - 5 * rollups.HOUR
    services.store_flows(_flows_through_the_day(hour, count=1), exporter="test")
    assert rollups.seal_hours(now=now) == 4
    holding, release = threading.Event(), threading.Event()

    def hold_the_hour_as_a_seal_does():
        with transaction.atomic():
            rollups._lock_hours(connection, [(hour - rollups.EPOCH) // rollups.HOUR], shared=False)
            holding.set()
            release.wait(30)
        return "released"

    sealing, sealed_results = in_thread(hold_the_hour_as_a_seal_does)
    assert holding.wait(30)
    late = _flows_through_the_day(current, count=2) + _flows_through_the_day(hour, count=2)[1:]
    late_write, late_results = in_thread(lambda: services.store_flows(late, exporter="test"))
    late_write.join(1)
    waited = late_write.is_alive()
    current_write, current_results = in_thread(
        lambda: services.store_flows(_flows_through_the_day(current, count=3)[1:], exporter="test"))
    current_write.join(10)
    went_through = not current_write.is_alive()
    release.set()
    for thread in (sealing, late_write, current_write):
        thread.join(30)
    assert waited and went_through
    assert late_results == [services.StoreResult(3, 0)] and current_results == [services.StoreResult(2, 0)]
    assert sealed_results == ["released"]
    assert FlowReportDestinationHourly.objects.get(hour=hour).flows == 2
    assert_exact()
