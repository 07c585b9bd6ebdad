"""Shared models: privacy and retention settings, the audit log, API keys, job locks and ingest counters."""

import getpass
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.validators import MinValueValidator
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)


class PrivacySettings(models.Model):
    """The single row of privacy settings (admin-editable)."""

    gdpr_mode = models.BooleanField(
        default=False,
        help_text="Mask personal IP addresses (IPv4 /24, IPv6 /48) in every API response.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "privacy settings"
        verbose_name_plural = "privacy settings"

    def __str__(self):
        return "GDPR mode on" if self.gdpr_mode else "GDPR mode off"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls):
        # Read from the database every time (one primary-key lookup; callers keep it per request): a switch
        # made in any process holds from the very next request of every process, with no cache to go stale.
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class RetentionPolicy(models.Model):
    """How long one dataset is kept. Apps register their datasets in vpnmonitor.retention."""

    dataset = models.CharField(max_length=64, unique=True)
    days = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    description = models.CharField(max_length=200, blank=True)
    last_pruned_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_pruned_rows = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["dataset"]
        verbose_name_plural = "retention policies"

    def __str__(self):
        return f"{self.dataset}: {self.days} days"


class AuditEvent(models.Model):
    """Who did what, to what, from where: destructive and settings actions."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.CharField(max_length=150, help_text="User name, API key or OAuth client")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.user} {self.action} {self.target}"


class ApiKey(models.Model):
    """A revocable API key for scripts and proxy workers; only its hash is stored."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (read)"
        OPERATOR = "operator", "Operator (read, clear data, change retention)"
        INGEST = "ingest", "Ingest (push data only)"

    PREFIX = "vpm"

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    tenant_user_id = models.BigIntegerField(
        null=True, blank=True,
        help_text="Scope proxy-analytics reads and writes to this user_id (tenant).",
    )
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"
        permissions = [
            ("read", "Can read monitoring data, metrics and the audit log"),
            ("operate", "Can clear data and change retention"),
            ("ingest", "Can push flow reports and proxy traffic"),
            ("view_unmasked_ip", "Can see unmasked IP addresses in GDPR mode"),
        ]

    def __str__(self):
        return f"{self.name} ({self.role})"

    @property
    def is_active(self):
        return self.revoked_at is None

    @staticmethod
    def hash_secret(secret):
        # Keys are 256-bit random values, so a fast hash is enough (no dictionary to guess from).
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, name, role=Role.VIEWER, tenant_user_id=None):
        """Create a key and return (ApiKey, plaintext). The plaintext is never stored."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        api_key = cls.objects.create(
            name=name, role=role, tenant_user_id=tenant_user_id,
            key_id=key_id, key_hash=cls.hash_secret(secret),
        )
        return api_key, f"{cls.PREFIX}_{key_id}_{secret}"

    @classmethod
    def authenticate(cls, plaintext):
        """Return the active key matching plaintext, or None."""
        try:
            prefix, key_id, secret = plaintext.split("_", 2)
        except ValueError:
            return None
        if prefix != cls.PREFIX:
            return None
        api_key = cls.objects.filter(key_id=key_id, revoked_at__isnull=True).first()
        if api_key is None or not secrets.compare_digest(api_key.key_hash, cls.hash_secret(secret)):
            return None
        now = timezone.now()
        if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key

    def revoke(self):
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class JobLock(models.Model):
    """A job's lease (SQLite; PostgreSQL uses advisory locks, see vpnmonitor.jobs), renewed while the job runs."""

    name = models.CharField(max_length=200, primary_key=True)
    owner = models.CharField(max_length=100)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} held by {self.owner} until {self.expires_at:%H:%M:%S}"

    @classmethod
    def acquire(cls, name, seconds, owner=""):
        now = timezone.now()
        cls.objects.filter(name=name, expires_at__lt=now).delete()
        try:
            with transaction.atomic():
                cls.objects.create(
                    name=name, owner=owner[:100],
                    expires_at=now + timedelta(seconds=seconds),
                )
        except IntegrityError:
            return False
        return True

    @classmethod
    def renew(cls, name, owner, seconds):
        """Push the lease of `owner` on; False when it no longer holds it."""
        expires_at = timezone.now() + timedelta(seconds=seconds)
        return bool(cls.objects.filter(name=name, owner=owner[:100]).update(expires_at=expires_at))

    @classmethod
    def release(cls, name, owner):
        cls.objects.filter(name=name, owner=owner[:100]).delete()


@dataclass(frozen=True)
class Actor:
    """Who did something, for audit(): a name and, when it came over HTTP, the client's address.

    vpnmonitor.api.principals.request_actor(request) gives the Actor of an HTTP request.
    """

    name: str
    address: str | None = None


def describe_actor(user):
    """The name an audit row gives a caller: a user name, apikey:NAME, oauth:CLIENT_ID or anonymous."""
    if user is None or not user.is_authenticated:
        return "anonymous"
    return str(getattr(user, "username", user)) or "unknown"


def audit(actor, action, target="", **details):
    """Record an AuditEvent. actor is an Actor, a name (e.g. command_actor()), or None for the system.
    details must never hold a secret."""
    if actor is None:
        actor = Actor("system")
    elif isinstance(actor, str):
        actor = Actor(actor)
    elif not isinstance(actor, Actor):
        raise TypeError(f"audit() takes an Actor, a name or None, not {type(actor).__name__}")
    return AuditEvent.objects.create(
        user=actor.name[:150], action=action, target=str(target)[:200], details=details,
        client_address=actor.address,
    )


def command_actor(command):
    """Who ran a management command, for audit(): the command and the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"manage.py {command} ({who})"


class IngestCounter(models.Model):
    """All-time count of records accepted by one HTTP ingest endpoint (read by /metrics; never goes down).

    Any app's ingest path adds to its own row with IngestCounter.add("<dataset>", n); the row appears in
    /metrics as vpnmonitor_ingest_records_total{dataset="<dataset>"} without further wiring.
    """

    dataset = models.CharField(max_length=64, primary_key=True)
    records = models.BigIntegerField(default=0)
    batches = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["dataset"]
        verbose_name = "ingest counter"

    def __str__(self):
        return f"{self.dataset}: {self.records} records in {self.batches} batches"

    @classmethod
    def add(cls, dataset, records):
        """Count one accepted batch of `records` records; a single UPDATE, so concurrent callers add up."""
        now = timezone.now()
        changes = {"records": F("records") + records, "batches": F("batches") + 1, "updated_at": now}
        add_to_counter(cls, {"dataset": dataset}, changes, {"records": records, "batches": 1, "updated_at": now})


def add_to_counter(model, key, changes, initial):
    """UPDATE the counter row `key` with `changes` (F() increments), or create it with `initial` values.

    A counter, not data: on its own, its commit need not wait for a WAL flush (a crash may lose the last
    increments). Inside a caller's transaction, that transaction's durability rules.
    """
    asynchronous = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if asynchronous:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if model.objects.filter(**key).update(**changes):
            return
    try:
        with transaction.atomic():
            model.objects.create(**key, **initial)
    except IntegrityError:
        # Another process created the row first.
        model.objects.filter(**key).update(**changes)


class ServiceFailureCounter(models.Model):
    """All-time count of operations on a service (the Redis cache) that failed and were served without it."""

    service = models.CharField(max_length=64, primary_key=True)
    failures = models.BigIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service"]
        verbose_name = "service failure counter"

    def __str__(self):
        return f"{self.service}: {self.failures} failed operations"

    @classmethod
    def add(cls, service, count=1):
        """Count failures (a single UPDATE, so concurrent callers add up); False, logged, on a database error."""
        now = timezone.now()
        try:
            add_to_counter(cls, {"service": service}, {"failures": F("failures") + count, "last_failure_at": now},
                           {"failures": count, "last_failure_at": now})
        except DatabaseError as exc:
            logger.warning("could not count %d %s failures: %s", count, service, exc)
            return False
        return True


class IngestionHealth(models.Model):
    """No table: gives the ingestion-health page a place (and a view permission) in admin."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "ingestion health"

    def __str__(self):
        return "ingestion health"
