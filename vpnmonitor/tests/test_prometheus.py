"""deploy/prometheus: the alert rules and Grafana dashboards use only series /metrics serves, promtool accepts the
configuration and the rules, every alert has a unit test, and a real Prometheus scrapes a running vpnmonitor."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from vpnmonitor.testing.servers import ROOT, gunicorn, prometheus
from vpnmonitor.tests.test_metrics import seeded  # noqa: F401 - the fixture of every series

DEPLOY = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((DEPLOY / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
TOKEN = "a-metrics-token-for-prometheus"
# Series Prometheus itself records for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def promtool():
    program = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(program).exists():
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return program


def run_promtool(*args):
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rules():
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def dashboard_expressions():
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                yield path.name, panel["title"], target["expr"]


def series_names(expr):
    """The metric names an expression reads (label matchers, ranges, grouping labels and functions left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def served_series(viewer_client):
    response = viewer_client.get("/metrics")
    assert response.status_code == 200
    return {sample.name for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def documented_series():
    """Every series name in the README's metric tables ({a,b} and …_suffix spelled out)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Monitoring: Prometheus metrics and ingestion health", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        for written in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if written.startswith("…"):
                previous = names[-1]
                head = written[1:].split("_")[1]
                written = previous[:previous.rfind("_" + head)] + written[1:]
            match = re.fullmatch(r"(\w*)\{([\w,]+)\}(\w*)", written)
            names += [match.group(1) + part + match.group(3) for part in match.group(2).split(",")] if match \
                else [written]
    return names


# ---- the files on their own ---------------------------------------------------------------------------------


def test_promtool_accepts_the_rule_files():
    output = run_promtool("check", "rules", *map(str, RULE_FILES))
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_accepts_the_shipped_configuration_with_its_rules(tmp_path):
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    token = tmp_path / "vpnmonitor-token"
    token.write_text(TOKEN)
    # The token file must exist for promtool; everything else is the file as shipped, rules beside it.
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(DEPLOY / "rules", tmp_path / "rules")
    output = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert "SUCCESS" in output and "rules found" in output


def test_the_unit_tests_of_the_rules_pass():
    assert "SUCCESS" in run_promtool("test", "rules", *map(str, RULE_TESTS))


def test_every_alert_has_a_unit_test_in_which_it_fires():
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fired = {
        case["alertname"]
        for path in RULE_TESTS for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    assert len(alerts) >= 16
    assert alerts - fired == set()


def test_the_readme_shows_the_shipped_scrape_job():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(scrape_configs:.*?)```", readme, flags=re.DOTALL).group(1)
    shipped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    assert yaml.safe_load(block)["scrape_configs"] == shipped


@pytest.mark.django_db
def test_the_documented_series_are_the_served_ones(seeded, viewer_client):  # noqa: F811
    from vpnmonitor.models import IngestCounter

    IngestCounter.add("flow_reports", 3)
    documented = documented_series()
    assert len(documented) == 34
    assert set(documented) - served_series(viewer_client) == set()


@pytest.mark.django_db
def test_every_rule_and_dashboard_expression_reads_only_series_metrics_serves(seeded, viewer_client):  # noqa: F811
    from vpnmonitor.models import IngestCounter

    IngestCounter.add("flow_reports", 3)
    served = served_series(viewer_client) | PROMETHEUS_SERIES
    expressions = [("rules", rule.get("alert") or rule.get("record"), rule["expr"]) for rule in rules()]
    expressions += list(dashboard_expressions())
    assert len(expressions) > 60
    for where, name, expr in expressions:
        read = series_names(expr)
        assert read, f"{where} {name}: no series in {expr!r}"
        assert read <= served, f"{where} {name}: {sorted(read - served)} not served by /metrics"


def test_the_dashboards_and_provisioning_file_fit_together():
    provisioning = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "vpnmonitor.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/vpnmonitor"
    titles = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        titles.add(dashboard["title"])
        assert dashboard["templating"]["list"][0]["type"] == "datasource"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
    assert titles == {"vpnmonitor: VPN", "vpnmonitor: flows", "vpnmonitor: proxy", "vpnmonitor: ingestion health"}


# ---- a real Prometheus scraping a running vpnmonitor -----------------------------------------------------------


def concrete(expr):
    """A dashboard expression with its Grafana variables set to "all"."""
    return re.sub(r"\$\w+", ".*", expr)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_vpnmonitor_with_the_readme_config_and_evaluates_the_shipped_rules(
        seeded, tmp_path):  # noqa: F811
    from vpnmonitor.models import IngestCounter
    from vpnmonitor.testing.worker import test_database_url

    promtool()
    IngestCounter.add("flow_reports", 3)
    token = tmp_path / "vpnmonitor-token"
    token.write_text(TOKEN)
    with gunicorn(tmp_path, DATABASE_URL=test_database_url(), METRICS_TOKEN=TOKEN) as base:
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        job = config["scrape_configs"][0]
        job["static_configs"] = [{"targets": [base.removeprefix("http://")]}]
        job["authorization"]["credentials_file"] = str(token)
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        config["rule_files"] = [str(path) for path in RULE_FILES]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        run_promtool("check", "config", str(tmp_path / "prometheus.yml"))

        with prometheus(tmp_path / "prometheus.yml", tmp_path) as api:
            deadline = time.monotonic() + 60
            while True:
                targets = api("targets")["activeTargets"]
                if targets and targets[0]["health"] == "up" and api("query", query="openvpn_up")["result"]:
                    break
                assert time.monotonic() < deadline, targets
                time.sleep(0.5)
            assert targets[0]["labels"]["job"] == "vpnmonitor"

            for name in documented_series():
                result = api("query", query=name)["result"]
                assert result, f"{name} not scraped"
            clients = api("query", query="openvpn_server_connected_clients")["result"]
            assert {item["metric"]["status_path"]: item["value"][1] for item in clients} == {
                "vpn-east": "2", "vpn-west": "1"}
            lost = api("query", query="vpnmonitor_flow_collector_packets_lost_total")["result"]
            assert [(item["metric"]["collector"], item["value"][1]) for item in lost] == [
                ("collector-1/0.0.0.0:2055", "7")]

            # Every rule evaluated without error; vpn-west (failing, last good poll 10 minutes ago) is down.
            deadline = time.monotonic() + 30
            while True:
                groups = api("rules")["groups"]
                evaluated = [rule for group in groups for rule in group["rules"]]
                if evaluated and all(rule["lastEvaluation"] > "2000" for rule in evaluated):
                    break
                assert time.monotonic() < deadline, groups
                time.sleep(0.5)
            assert len(evaluated) == len(rules())
            assert [rule["name"] for rule in evaluated if rule["health"] != "ok"] == []
            alerts = {(alert["labels"]["alertname"], alert["labels"].get("status_path")): alert["state"]
                      for alert in api("alerts")["alerts"]}
            assert alerts[("OpenVpnServerDown", "vpn-west")] == "pending"
            assert alerts[("OpenVpnPollsFailing", "vpn-west")] == "pending"
            assert ("OpenVpnServerDown", "vpn-east") not in alerts

            # Every dashboard expression is valid PromQL for this Prometheus and this data.
            for _dashboard, _title, expr in dashboard_expressions():
                api("query", query=concrete(expr))  # a 400 (bad expression) fails inside api()
            connected = api("query", query=concrete(
                next(expr for _, title, expr in dashboard_expressions() if title == "Connections open")))
            assert connected["result"][0]["value"][1] == "3"
