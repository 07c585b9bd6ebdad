"""Settings for vpnmonitor, read from the environment (see README's configuration table)."""

import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from vpnmonitor.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_log_level,
    env_redis_url,
    env_str,
    env_timezone,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VPNMONITOR_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key():
    key = env_str("SECRET_KEY", "").strip()
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)"
        )
    # Local use only: a key generated once and kept under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = env_timezone("TIME_ZONE", "UTC")
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'vpnmonitor.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real Celery worker started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REDIS_URL = env_redis_url("REDIS_URL")

INSTALLED_APPS = [
    # First, so that its createsuperuser and changepassword (Django's, audited) take the place of auth's.
    "vpnmonitor",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "oauth2_provider",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "monitoring",
    "flowreports",
    "proxylogs",
    "proxytraffic",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "vpnmonitor.api.permissions.RolePolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "vpnmonitor.logins.LoginLockedMiddleware",
]

ROOT_URLCONF = "vpnmonitor.urls"
WSGI_APPLICATION = "vpnmonitor.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Every password check is throttled and locked out per address and per user name (vpnmonitor/logins.py).
AUTHENTICATION_BACKENDS = ["vpnmonitor.logins.GuardedModelBackend"]
LOGIN_BACKOFF_MAX_SECONDS = env_int("LOGIN_BACKOFF_MAX_SECONDS", 60, minimum=0)
LOGIN_LOCKOUT_FAILURES = env_int("LOGIN_LOCKOUT_FAILURES", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=60)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# Ingest batches (10,000 flow or traffic records) are a few MB of JSON; larger bodies get a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve static files straight from the finders in development so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG

if REDIS_URL:
    # Fails open: with Redis down, reads are misses and throttling lets requests through (vpnmonitor/cache.py).
    CACHES = {"default": {"BACKEND": "vpnmonitor.cache.FailOpenRedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Production hardening; `manage.py check --deploy` is clean when DEBUG is off and HTTPS is on.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not DEBUG)
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_HTTPS)
# Load balancers and Prometheus talk plain HTTP to the web port; a redirect would fail their checks.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy on every response: only this site's own scripts, styles, images and fonts. The one
# inline script and style (Swagger UI's) carry the per-request nonce; style attributes stay allowed because
# the browsable API's templates use a few; data: images are Swagger UI's icons.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is a decision for the owner of the registrable domain (it is submitted for the apex and
    # binds every subdomain); a host such as vpnmonitor.example.com cannot make it. Opt in with
    # SECURE_HSTS_PRELOAD=true.
    "security.W021",
]
if SECURE_HTTPS and BEHIND_PROXY and not SECURE_SSL_REDIRECT:
    # SECURE_SSL_REDIRECT=false behind a TLS-terminating proxy means the proxy redirects plain HTTP itself.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Covering indexes (INCLUDE columns) are a PostgreSQL optimisation; SQLite uses their key columns.
    SILENCED_SYSTEM_CHECKS.append("models.W040")

# GET /metrics: a bearer token (Authorization: Bearer <METRICS_TOKEN>), else a staff user or a viewer/operator
# credential; METRICS_PUBLIC=true serves it to anyone (only behind a firewall that limits who can reach it).
METRICS_TOKEN = env_str("METRICS_TOKEN", "").strip()
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
# Ingestion health: a server is stale when its last good poll is older than this many seconds, or than three
# poll intervals when the interval set in admin is longer; a log source lags when it has unread bytes and its
# last import is older than LOG_SOURCE_LAG_SECONDS; a flow collector is stale when it has not reported for
# FLOW_COLLECTOR_STALE_SECONDS.
STALE_SERVER_SECONDS = env_int("STALE_SERVER_SECONDS", 60, minimum=1)
LOG_SOURCE_LAG_SECONDS = env_int("LOG_SOURCE_LAG_SECONDS", 120, minimum=1)
FLOW_COLLECTOR_STALE_SECONDS = env_int("FLOW_COLLECTOR_STALE_SECONDS", 60, minimum=1)
# Periodic jobs without PostgreSQL's advisory locks hold a lease this long, renewed every half of it.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 30, minimum=2)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # A bearer-style scheme first so that a missing credential is a 401, not a 403.
        "vpnmonitor.api.authentication.JWTAuthentication",
        "vpnmonitor.api.authentication.OAuth2Authentication",
        "vpnmonitor.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["vpnmonitor.api.permissions.RolePolicy"],
    "DEFAULT_THROTTLE_CLASSES": ["vpnmonitor.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "default": env_str("THROTTLE_RATE", "1200/min"),
        "sessions": env_str("SESSIONS_THROTTLE_RATE", "60/min"),
        "ingest": env_str("INGEST_THROTTLE_RATE", "600/min"),
    },
    # Every body is strict JSON, whatever its Content-Type (vpnmonitor/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["vpnmonitor.api.parsers.JSONBodyParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "vpnmonitor.api.parsers.JSONBodyNegotiation",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "vpnmonitor.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The caller's address for throttles and sign-in lockouts: X-Forwarded-For only from the trusted proxy.
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 1, minimum=1)),
    "AUTH_HEADER_TYPES": ("Bearer",),
}

OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int("OAUTH2_TOKEN_SECONDS", 3600, minimum=60),
    # A token may do what its scopes allow within its application's role (its owner's groups; the owner's
    # superuser status does not count): read → viewer, write → operator actions, ingest → pushing data.
    "SCOPES": {
        "read": "Read monitoring data",
        "write": "Clear data and change retention",
        "ingest": "Push flow reports and proxy traffic",
    },
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": True,
    # RFC 9700 (OAuth 2.0 Security BCP): only client credentials are used here, so every compliant behaviour
    # can be on (and `check --deploy` stays clean).
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"] if DEBUG else ["https"],
    # Client-secret checks go through the sign-in guard (vpnmonitor/logins.py).
    "OAUTH2_VALIDATOR_CLASS": "vpnmonitor.logins.GuardedOAuth2Validator",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "vpnmonitor API",
    "DESCRIPTION": (
        "OpenVPN monitoring, VPN sessions, flow reports, proxy logs and proxy traffic analytics. "
        "Authenticate with a session, HTTP Basic, a JWT or OAuth2 bearer token, or an X-API-Key header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Celery: Redis when REDIS_URL is set; otherwise an embedded file-system broker under var/
# so that the same worker and beat run with nothing else installed.
CELERY_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    for sub in ("queue", "processed", "results", "control"):
        (CELERY_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DIR / "queue"),
        "data_folder_out": str(CELERY_DIR / "queue"),
        "processed_folder": str(CELERY_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(CELERY_DIR / "control"),
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_DIR / 'results'}"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_log_level("LOG_LEVEL")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
