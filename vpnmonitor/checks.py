"""Deployment checks of our own: `check --deploy` fails while a placeholder secret of the example env file is in use,
and warns when REDIS_URL is unset."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

EXAMPLE_ENV = Path(__file__).resolve().parent.parent / "deploy" / "vpnmonitor.env.example"
PLACEHOLDER_MARK = "change-me"


def example_placeholders():
    """{variable: value} of the example env file's secrets that must be replaced."""
    values = {}
    if EXAMPLE_ENV.exists():
        for line in EXAMPLE_ENV.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#") and PLACEHOLDER_MARK in value:
                values[name.strip()] = value.strip()
    return values


def _is_placeholder(value, example):
    return bool(value) and (value == example or PLACEHOLDER_MARK in value)


@register(Tags.security, deploy=True)
def check_placeholder_secrets(app_configs=None, **kwargs):
    examples = example_placeholders()
    database = settings.DATABASES["default"]
    in_use = {
        "SECRET_KEY": settings.SECRET_KEY,
        "METRICS_TOKEN": settings.METRICS_TOKEN,
        "DATABASE_URL": database.get("PASSWORD") or "",
    }
    errors = []
    for name, value in in_use.items():
        if _is_placeholder(value, examples.get(name)):
            errors.append(Error(
                f"{name} still holds the placeholder of deploy/vpnmonitor.env.example.",
                hint=f"Set {name} to a fresh secret (for keys and tokens: "
                     "python3 -c 'import secrets; print(secrets.token_urlsafe(50))').",
                id="vpnmonitor.E001",
            ))
    return errors


@register(Tags.security, deploy=True)
def check_shared_cache(app_configs=None, **kwargs):
    if settings.REDIS_URL:
        return []
    return [Warning(
        "REDIS_URL is unset: sign-in backoff and lockout and the API throttles are counted per process.",
        hint="Set REDIS_URL so that every web process shares them (and Celery uses Redis as its broker).",
        id="vpnmonitor.W001",
    )]
