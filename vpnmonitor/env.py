"""Typed readers for configuration taken from the environment.

Each reader raises ImproperlyConfigured naming the variable when its value is
malformed, so a typo stops start-up instead of silently picking a default.
"""

import os
import zoneinfo

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name, default=None, environ=os.environ):
    return environ.get(name, default)


def env_bool(name, default=False, environ=os.environ):
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}"
    )


def env_int(name, default, *, minimum=None, maximum=None, environ=os.environ):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_list(name, default=(), environ=os.environ):
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name, default="INFO", environ=os.environ):
    """A logging level name in any case ('warning', 'INFO'); gunicorn reads the same variable."""
    value = environ.get(name, default).strip().upper()
    if value not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(LOG_LEVELS)} (any case), got {value!r}")
    return value


def env_timezone(name, default="UTC", environ=os.environ):
    value = environ.get(name, default).strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone such as 'UTC' or 'Europe/Berlin', got {value!r}"
        ) from None
    return value


def env_database(name, default, environ=os.environ):
    """Parse DATABASE_URL into a Django DATABASES entry (PostgreSQL or SQLite)."""
    import dj_database_url

    raw = environ.get(name) or default
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"{name} must be a postgres:// or sqlite:// URL, got {raw!r}"
        )
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} does not name a database: {raw!r}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        # WAL lets the web server, the worker and beat read while one of them writes.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        # Session settings for the APIs' reads (a setting the URL's `options` parameter names is left to it):
        # - no JIT: on the rollup reads and raw edges, compiling took up to 1.2 s of a 1.45 s query;
        # - random_page_cost 1.1, as for SSDs or a cached database: the flows lie in the table in time order,
        #   and at the default 4 a 12-hour edge of 10M flows was read by a sequential scan of the whole table
        #   (800 ms) instead of its start_time range (200 ms).
        options = config.setdefault("OPTIONS", {})
        given = options.get("options", "")
        defaults = [f"-c {setting}={value}" for setting, value in POSTGRESQL_SESSION.items() if setting not in given]
        options["options"] = " ".join([*defaults, given]).strip()
    return config


POSTGRESQL_SESSION = {"jit": "off", "random_page_cost": "1.1"}


def env_redis_url(name, environ=os.environ):
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"{name} must be a redis://, rediss:// or unix:// URL, got {raw!r}"
        )
    return raw
