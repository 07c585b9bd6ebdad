"""A real Squid on 127.0.0.1: traffic through it, its logs tailed by the beat task, the API's numbers checked."""

import base64

import pytest

from proxylogs.models import LogSource
from proxylogs.tasks import tail_proxy_logs
from proxylogs.tests.squid_harness import (
    BLOCKED_DOMAIN,
    DENIED_CONNECT_IP,
    DENIED_CONNECT_IP6,
    DENIED_CONNECT_PORT,
    PRIVATE_PATH,
    SquidUnavailableError,
    find_squid,
    proxy_connect,
    proxy_get,
    running_squid,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def squid_traffic():
    if find_squid() is None:
        pytest.skip("squid is not installed (Debian package 'squid')")
    try:
        with running_squid() as squid:
            origin = squid.origin_url
            proxy_get(squid, f"{origin}/", {"User-Agent": FIREFOX})
            proxy_get(squid, f"{origin}/nothere.zip", {"User-Agent": "curl/8.5.0"})
            proxy_get(squid, f"http://www.{BLOCKED_DOMAIN}/")
            proxy_connect(squid, f"{squid.connect_host}:{squid.connect_port}", b"hello")
            proxy_connect(squid, f"127.0.0.1:{DENIED_CONNECT_PORT}")
            proxy_connect(squid, f"{DENIED_CONNECT_IP}:443")
            proxy_connect(squid, f"[{DENIED_CONNECT_IP6}]:443")
            expected = 7
            if squid.auth_enabled:
                proxy_get(squid, f"{origin}{PRIVATE_PATH}report.pdf")  # 407 challenge
                credentials = base64.b64encode(b"alice:secret").decode()
                proxy_get(squid, f"{origin}{PRIVATE_PATH}report.pdf",
                          {"Proxy-Authorization": f"Basic {credentials}"})
                expected += 2
            squid.wait_for_lines(squid.access_log, expected)
            squid.wait_for_lines(squid.combined_log, expected)
            LogSource.objects.create(name="squid", path=str(squid.access_log))
            LogSource.objects.create(name="squid-combined", path=str(squid.combined_log), format="combined")
            results = tail_proxy_logs()
            yield squid, expected, results
    except SquidUnavailableError as exc:
        pytest.skip(f"squid did not start: {exc}")


def test_the_api_counts_what_went_through_a_real_squid(viewer_client, squid_traffic):
    squid, expected, results = squid_traffic
    assert results["squid"] == {"imported": expected, "rejected": 0}
    assert results["squid-combined"] == {"imported": expected, "rejected": 0}
    # Both logs describe the same requests, so every count is twice the traffic.
    stats = viewer_client.get("/api/logs/stats").json()["data"]
    assert stats["total_count"] == 2 * expected
    # Per log: the denied domain and three denied CONNECTs; the 407 challenge is not a block.
    assert stats["blocked_count"] == 2 * 4
    # The three denied CONNECTs go to raw addresses (127.0.0.1:22, 192.0.2.10:443, [2001:db8::dead]:443).
    assert stats["ip_blocks_count"] == 2 * 3
    assert stats["last_import"] is not None

    rows = viewer_client.get("/api/logs?limit=1000&sort=timestamp&order=asc").json()["data"]
    native = [row for row in rows if row["elapsed_ms"] is not None]  # the combined format has no elapsed time
    assert len(native) == expected
    by_destination = {(row["method"], row["destination"]): row for row in native}
    tunnel = by_destination[("CONNECT", f"127.0.0.1:{squid.connect_port}")]
    assert (tunnel["status"], tunnel["result_code"], tunnel["blocked"]) == ("200 Connection established",
                                                                            "TCP_TUNNEL", False)
    denied = by_destination[("CONNECT", f"[{DENIED_CONNECT_IP6}]:443")]
    assert (denied["status"], denied["result_code"], denied["blocked"]) == ("403 Forbidden", "TCP_DENIED", True)
    missing = next(row for row in native if row["url"].endswith("/nothere.zip"))
    assert missing["status"] == "404 Not Found" and not missing["blocked"]
    assert by_destination[("GET", f"www.{BLOCKED_DOMAIN}")]["status"] == "403 Forbidden"
    if squid.auth_enabled:
        challenge = next(row for row in native if row["http_status"] == 407)
        assert (challenge["status"], challenge["blocked"]) == ("407 Proxy Authentication Required", False)
        assert any(row["user"] == "alice" for row in native)

    # Two hours, in case the requests straddle the turn of an hour.
    timeline = viewer_client.get("/api/logs/timeline?hours=2").json()["data"]
    assert sum(point["total"] for point in timeline) == 2 * expected
    assert sum(point["blocked"] for point in timeline) == 2 * 4

    agents = viewer_client.get("/api/analytics/user-agents").json()["data"]
    categories = {row["category"]: row["count"] for row in agents["categories"]}
    assert categories["browser"] == 1 and categories["cli"] == 1
    extensions = {row["extension"]: row["count"] for row in
                  viewer_client.get("/api/analytics/file-extensions").json()["data"]["extensions"]}
    assert extensions["zip"] == 2


def test_a_second_tail_imports_nothing_new(viewer_client, squid_traffic):
    squid, expected, _ = squid_traffic
    assert tail_proxy_logs()["squid"] == {"imported": 0, "rejected": 0}
    assert viewer_client.get("/api/logs/stats").json()["data"]["total_count"] == 2 * expected
