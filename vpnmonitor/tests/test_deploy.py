"""Production deployment: `check --deploy` is clean, the example units verify, gunicorn serves with its config."""

import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpnmonitor.testing.servers import fetch, free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ["vpnmonitor-web.service", "vpnmonitor-worker.service", "vpnmonitor-beat.service",
         "vpnmonitor-collector@.service"]


def example_environment():
    values = {}
    for line in (DEPLOY / "vpnmonitor.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def production_environment(tmp_path, **overrides):
    """The example file's settings with real secrets, on this machine's database and a scratch directory."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **example_environment(),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "METRICS_TOKEN": secrets.token_urlsafe(24),
        "VPNMONITOR_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    env.update(overrides)
    return env


def check_deploy(env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_the_example_production_settings(tmp_path):
    result = check_deploy(production_environment(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_is_clean_when_tls_ends_at_the_proxy_and_gunicorn_redirects_nothing(tmp_path):
    result = check_deploy(production_environment(tmp_path, BEHIND_PROXY="true", SECURE_SSL_REDIRECT="false"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_still_warns_when_nothing_redirects_plain_http(tmp_path):
    result = check_deploy(production_environment(tmp_path, BEHIND_PROXY="false", SECURE_SSL_REDIRECT="false"))

    assert result.returncode == 1
    assert "security.W008" in result.stderr + result.stdout


def test_check_deploy_warns_that_sign_in_limits_and_throttles_are_per_process_without_redis(tmp_path):
    result = check_deploy(production_environment(tmp_path, REDIS_URL=""))

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "WARNINGS:" in output and "ERRORS:" not in output
    assert "vpnmonitor.W001" in output
    assert "REDIS_URL is unset: sign-in backoff and lockout and the API throttles are counted per process." in output


def test_check_deploy_fails_with_debug_on(tmp_path):
    result = check_deploy(production_environment(tmp_path, DEBUG="true"))

    assert result.returncode == 1
    assert "security.W018" in result.stderr + result.stdout


@pytest.mark.parametrize("name", ["SECRET_KEY", "METRICS_TOKEN", "DATABASE_URL"])
def test_check_deploy_fails_while_a_placeholder_secret_of_the_example_file_is_in_use(tmp_path, name):
    placeholder = example_environment()[name]
    if name == "DATABASE_URL":
        # The example's database host does not exist here; its placeholder password is what the check reads.
        placeholder = placeholder.replace("db.example.com", "127.0.0.1")
    result = check_deploy(production_environment(tmp_path, **{name: placeholder}))

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "vpnmonitor.E001" in output
    assert f"{name} still holds the placeholder of deploy/vpnmonitor.env.example" in output


def test_a_short_metrics_token_stops_start_up(tmp_path):
    result = check_deploy(production_environment(tmp_path, METRICS_TOKEN="short"))

    assert result.returncode == 1
    assert "METRICS_TOKEN must be at least 16 characters" in result.stderr


def test_every_variable_of_the_example_environment_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)`", readme, flags=re.MULTILINE))
    documented |= {name for row in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)+) \|", readme, flags=re.MULTILINE)
                   for name in re.findall(r"`([A-Z_]+)`", row)}

    assert set(example_environment()) - documented == set()


# ---- systemd units ----


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS)
def test_the_systemd_unit_verifies(unit, tmp_path):
    # Installed paths point at this checkout, so systemd can check that every command exists.
    text = (DEPLOY / unit).read_text()
    text = text.replace("/opt/vpnmonitor", str(ROOT)).replace(
        "/etc/vpnmonitor/vpnmonitor.env", str(DEPLOY / "vpnmonitor.env.example"))
    (tmp_path / unit).write_text(text)

    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / unit)],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""


def exec_start(unit):
    (line,) = [line for line in (DEPLOY / unit).read_text().splitlines() if line.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()


def test_the_units_run_the_project_commands_with_the_shared_environment_file():
    for unit in UNITS:
        text = (DEPLOY / unit).read_text()
        assert "EnvironmentFile=/etc/vpnmonitor/vpnmonitor.env" in text
        assert "User=vpnmonitor" in text and "Restart=on-failure" in text
    assert exec_start("vpnmonitor-web.service")[1:] == [
        "-c", "/opt/vpnmonitor/deploy/gunicorn.conf.py", "vpnmonitor.wsgi"]
    assert exec_start("vpnmonitor-worker.service")[1:4] == ["-A", "vpnmonitor", "worker"]
    assert exec_start("vpnmonitor-beat.service")[1:4] == ["-A", "vpnmonitor", "beat"]


def test_the_collector_template_passes_its_instance_as_the_listen_address():
    from flowreports.management.commands.collect_flows import Command, parse_listen

    command = exec_start("vpnmonitor-collector@.service")
    assert command[1:3] == ["manage.py", "collect_flows"]
    # systemd replaces %I with the unescaped instance name, e.g. 0.0.0.0:2055 or [::]:2055.
    for instance, expected in (("0.0.0.0:2055", ("0.0.0.0", 2055)), ("[::]:4739", ("::", 4739))):
        args = [instance if arg == "%I" else arg for arg in command[3:]]
        options = Command().create_parser("manage.py", "collect_flows").parse_args(args)
        assert parse_listen(options.listen) == expected


# ---- gunicorn ----


@contextlib.contextmanager
def running_gunicorn(tmp_path, settings, workers=2):
    """gunicorn with deploy/gunicorn.conf.py on the test database; yields (base URL, its environment)."""
    from vpnmonitor.testing.worker import test_database_url

    port = free_port()
    env = production_environment(
        tmp_path, DATABASE_URL=test_database_url(), REDIS_URL=settings.REDIS_URL or "",
        GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers), ALLOWED_HOSTS="127.0.0.1",
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115 - read back if the test fails
    process = subprocess.Popen([str(gunicorn), "-c", str(DEPLOY / "gunicorn.conf.py"), "vpnmonitor.wsgi"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"{base}/api/v1/health")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_health_and_metrics_over_plain_http_and_redirects_the_rest(tmp_path, settings):
    with running_gunicorn(tmp_path, settings) as (base, env):
        status, _, body = fetch(f"{base}/api/v1/health")
        assert status == 200, body
        assert '"status":"healthy"' in body
        status, _, body = fetch(f"{base}/metrics", {"Authorization": f"Bearer {env['METRICS_TOKEN']}"})
        assert status == 200
        assert "# TYPE openvpn_up gauge" in body
        assert fetch(f"{base}/metrics")[0] == 401
        status, headers, _ = fetch(f"{base}/api/v1/clients")
        assert status == 301
        assert headers["Location"] == f"{base.replace('http:', 'https:')}/api/v1/clients"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_gdpr_switch_in_admin_holds_from_the_very_next_request_of_every_gunicorn_worker(
        tmp_path, settings, client, django_user_model):
    from django.utils import timezone

    from proxylogs.ingest.parse import parse_squid
    from proxylogs.services import store_records
    from vpnmonitor.models import ApiKey, AuditEvent

    store_records([parse_squid(f"{timezone.now().timestamp():.3f} 1 192.0.2.141 TCP_MISS/200 10 GET "
                               "http://example.com/ - HIER_DIRECT/- -")])
    _, key = ApiKey.issue("reader", ApiKey.Role.VIEWER)
    client.force_login(django_user_model.objects.create_superuser("root", password=None))

    with running_gunicorn(tmp_path, settings, workers=2) as (base, _):
        # Through the TLS-terminating proxy (BEHIND_PROXY in the example file), so nothing is redirected.
        headers = {"X-API-Key": key, "X-Forwarded-Proto": "https"}

        def client_addresses(rounds=6):
            # Four at a time, so that both sync workers answer (each serves one request at a time).
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                replies = list(pool.map(lambda _: fetch(f"{base}/api/logs?limit=1", headers), range(4 * rounds)))
            assert {status for status, _, _ in replies} == {200}, replies[0]
            return {json.loads(body)["data"][0]["client_ip"] for _, _, body in replies}

        assert client_addresses() == {"192.0.2.141"}
        assert client.post("/admin/vpnmonitor/privacysettings/add/", {"gdpr_mode": "on"}).status_code == 302
        assert client_addresses() == {"192.0.2.0"}
        assert client.post("/admin/vpnmonitor/privacysettings/1/change/", {}).status_code == 302
        assert client_addresses() == {"192.0.2.141"}

    switches = AuditEvent.objects.filter(action__startswith="privacy.").order_by("id")
    assert [(e.user, e.action, e.details["changes"]["gdpr_mode"]) for e in switches] == [
        ("root", "privacy.create", {"after": True}),
        ("root", "privacy.update", {"before": True, "after": False}),
    ]
