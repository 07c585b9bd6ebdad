import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from vpnmonitor import env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (lambda e: env.env_bool("DEBUG", environ=e), "maybe", "DEBUG must be a boolean"),
        (lambda e: env.env_int("X_PORT", 1, environ=e), "eighty", "X_PORT must be an integer"),
        (lambda e: env.env_int("X_PORT", 1, minimum=1, environ=e), "0", "X_PORT must be at least 1"),
        (lambda e: env.env_timezone("TIME_ZONE", environ=e), "Mars/Olympus", "TIME_ZONE must be an IANA time zone"),
        (lambda e: env.env_log_level("LOG_LEVEL", environ=e), "verbose", "LOG_LEVEL must be one of DEBUG, INFO"),
        (lambda e: env.env_database("DATABASE_URL", "sqlite:///x", environ=e), "mysql://db/x",
         "DATABASE_URL must be a postgres:// or sqlite:// URL"),
        (lambda e: env.env_database("DATABASE_URL", "sqlite:///x", environ=e), "postgres://host:notaport/db",
         "DATABASE_URL is not a valid database URL"),
        (lambda e: env.env_redis_url("REDIS_URL", environ=e), "localhost:6379", "REDIS_URL must be a redis://"),
    ],
)
def test_readers_reject_bad_values_naming_the_variable(reader, value, message):
    name = message.split()[0]
    with pytest.raises(ImproperlyConfigured, match=message):
        reader({name: value})


def test_readers_accept_good_values():
    assert env.env_bool("DEBUG", environ={"DEBUG": "Yes"}) is True
    assert env.env_int("N", 5, environ={}) == 5
    assert env.env_log_level("LOG_LEVEL", environ={"LOG_LEVEL": "warning"}) == "WARNING"
    hosts = env.env_list("ALLOWED_HOSTS", environ={"ALLOWED_HOSTS": "a.example, b.example,"})
    assert hosts == ["a.example", "b.example"]
    config = env.env_database("DATABASE_URL", "", environ={"DATABASE_URL": "postgres://u:p@db.example:5433/vpn"})
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql", "db.example", 5433, "vpn")
    assert config["OPTIONS"]["options"] == "-c jit=off -c random_page_cost=1.1"
    tuned = env.env_database("DATABASE_URL", "", environ={
        "DATABASE_URL": "postgres://db.example/vpn?options=-c%20statement_timeout%3D5000"})
    assert tuned["OPTIONS"]["options"] == "-c jit=off -c random_page_cost=1.1 -c statement_timeout=5000"
    own = env.env_database("DATABASE_URL", "", environ={"DATABASE_URL": "postgres://db.example/vpn?options=-c%20jit%3Don"})
    assert own["OPTIONS"]["options"] == "-c random_page_cost=1.1 -c jit=on"


@pytest.mark.django_db
def test_postgresql_sessions_run_with_the_read_settings():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        for name, value in env.POSTGRESQL_SESSION.items():
            cursor.execute(f"SHOW {name}")
            assert cursor.fetchone()[0] == value


def _start_django(extra_env):
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    environ.update(extra_env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**environ, "DJANGO_SETTINGS_MODULE": "vpnmonitor.settings"},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("extra_env", "message"),
    [
        ({"DEBUG": "false"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DEBUG": "perhaps"}, "DEBUG must be a boolean"),
        ({"DEBUG": "true", "DATABASE_URL": "oracle://x/y"}, "DATABASE_URL must be a postgres:// or sqlite:// URL"),
        ({"DEBUG": "true", "TIME_ZONE": "Nowhere/Land"}, "TIME_ZONE must be an IANA time zone"),
        ({"DEBUG": "true", "REDIS_URL": "http://redis"}, "REDIS_URL must be a redis://"),
    ],
)
def test_start_up_stops_with_a_message_naming_the_variable(extra_env, message):
    result = _start_django(extra_env)
    assert result.returncode != 0
    assert message in result.stderr


def test_start_up_succeeds_with_production_settings():
    result = _start_django({"DEBUG": "false", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "vpn.example"})
    assert result.returncode == 0, result.stderr
