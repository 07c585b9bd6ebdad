"""seed_demo fills every app with data the APIs then serve, once."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_seed_demo_fills_every_app_and_the_apis_serve_it(viewer_client, capsys):
    call_command("seed_demo", "--clients", "4", "--days", "2", "--flows", "300", "--log-lines", "300")
    output = capsys.readouterr().out
    for app in ("vpnmonitor:", "monitoring:", "flowreports:", "proxylogs:"):
        assert app in output

    analytics = viewer_client.get("/api/v1/analytics").json()["data"]
    assert sum(point["total_rx"] for point in analytics["global_history_24h"]) > 0
    assert viewer_client.get("/api/v1/stats/system").json()["data"]["total_clients"] == 4
    assert viewer_client.get("/api/v1/flow-reports").json()["result"]["total_count"] > 0
    assert viewer_client.get("/api/logs").json()["total"] > 0

    call_command("seed_demo", "--if-empty")
    assert "already present" in capsys.readouterr().out
    assert viewer_client.get("/api/v1/stats/system").json()["data"]["total_clients"] == 4
