"""OpenVPN servers, their clients and connections, traffic samples with rollups, and certificates."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from vpnmonitor.secrets_at_rest import EncryptedTextField


def validate_time_zone(value):
    """An IANA time zone name this host knows (e.g. Europe/Berlin)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. Europe/Berlin)") from None


class VpnServer(models.Model):
    """An OpenVPN server, read over its management interface or from its status file."""

    name = models.CharField(max_length=100, unique=True)
    management_address = models.CharField(
        max_length=200, blank=True, help_text="host:port of the management interface, e.g. 127.0.0.1:7505"
    )
    management_socket = models.CharField(
        max_length=500, blank=True, help_text="Unix socket path (instead of host:port)"
    )
    management_password = EncryptedTextField(
        blank=True, help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )
    status_file = models.CharField(max_length=500, blank=True, help_text="status file path (instead of management)")
    pki_dir = models.CharField(max_length=500, blank=True, help_text="easy-rsa pki/ directory for certificate expiry")
    log_file = models.CharField(max_length=500, blank=True, help_text="server log, tailed for failed connections")
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_time_zone],
        help_text="IANA zone of the server's clock, for status and log times without a time_t "
                  "(status-version 1, older servers); empty: TIME_ZONE",
    )
    region = models.CharField(max_length=100, blank=True)
    network_name = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_status_time = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="TIME of the last status read (the server's clock)"
    )
    log_checkpoint = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "VPN server"

    def __str__(self):
        return self.name

    @property
    def tzinfo(self):
        """The zone the server writes its local times in: its own, else TIME_ZONE."""
        return zoneinfo.ZoneInfo(self.time_zone or settings.TIME_ZONE)

    @property
    def source_description(self):
        return self.management_address or self.management_socket or self.status_file or "(no source)"


class VpnClient(models.Model):
    """One common name on one server: its current state and all-time totals."""

    class Status(models.TextChoices):
        ACTIVE = "Active"
        DISCONNECTED = "Disconnected"

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="clients")
    common_name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DISCONNECTED)
    connections = models.PositiveIntegerField(default=0, help_text="connections open right now")
    real_address = models.CharField(max_length=100, blank=True)
    virtual_address = models.GenericIPAddressField(null=True, blank=True)
    virtual_ipv6 = models.GenericIPAddressField(null=True, blank=True)
    recv_rate_bps = models.FloatField(default=0, help_text="bytes/s the server received from the client")
    sent_rate_bps = models.FloatField(default=0, help_text="bytes/s the server sent to the client")
    total_bytes_received = models.BigIntegerField(default=0)
    total_bytes_sent = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["common_name", "server_id"]
        constraints = [models.UniqueConstraint(fields=["server", "common_name"], name="unique_client_per_server")]
        indexes = [models.Index(fields=["common_name"])]
        verbose_name = "VPN client"

    def __str__(self):
        return f"{self.common_name} on {self.server_id}"


class VpnSession(models.Model):
    """One connection: from the poll that first saw it until it was gone (or a failed attempt)."""

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="sessions")
    client = models.ForeignKey(VpnClient, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions")
    common_name = models.CharField(max_length=255, blank=True)
    connection_key = models.CharField(max_length=300, help_text="Client ID and Connected Since, unique per server")
    openvpn_client_id = models.BigIntegerField(null=True, blank=True, help_text="OpenVPN's Client ID")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    disconnect_reason = models.CharField(max_length=200, blank=True)
    real_address = models.CharField(max_length=100, blank=True)
    real_ip = models.GenericIPAddressField(null=True, blank=True)
    real_port = models.PositiveIntegerField(null=True, blank=True)
    protocol = models.CharField(max_length=16, blank=True)
    virtual_address = models.GenericIPAddressField(null=True, blank=True)
    virtual_ipv6 = models.GenericIPAddressField(null=True, blank=True)
    username = models.CharField(max_length=255, blank=True)
    peer_id = models.BigIntegerField(null=True, blank=True)
    cipher = models.CharField(max_length=64, blank=True)
    bytes_received = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    last_status_time = models.DateTimeField(help_text="TIME of the status read that last updated the counters")
    os_type = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["server", "connection_key"], name="unique_connection_per_server")
        ]
        indexes = [
            models.Index(fields=["server", "status"]),
            models.Index(fields=["updated_at", "id"]),
            models.Index(fields=["created_at", "id"]),
        ]
        verbose_name = "VPN session"

    def __str__(self):
        return f"{self.common_name} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"


class UsageSample(models.Model):
    """Raw traffic of one client between two status reads (table usage_history)."""

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(VpnClient, on_delete=models.CASCADE, related_name="samples")
    timestamp = models.DateTimeField(help_text="TIME of the status read that ends the interval")
    bytes_received = models.BigIntegerField()
    bytes_sent = models.BigIntegerField()
    interval_seconds = models.FloatField(help_text="real time the bytes were counted over")

    class Meta:
        db_table = "usage_history"
        indexes = [
            # Covering on PostgreSQL, so a client's history is read from the index alone.
            models.Index(fields=["client", "timestamp"], include=["bytes_received", "bytes_sent"],
                         name="usage_client_time_covering"),
            models.Index(fields=["timestamp"]),
        ]

    def __str__(self):
        return f"{self.client_id} {self.timestamp:%Y-%m-%d %H:%M:%S} +{self.bytes_received}/+{self.bytes_sent}"


class PollRecord(models.Model):
    """One status read of a server: its totals and how many connections were open (table poll_history)."""

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="polls")
    timestamp = models.DateTimeField()
    active_connections = models.PositiveIntegerField()
    active_clients = models.PositiveIntegerField(help_text="distinct common names connected")
    bytes_received = models.BigIntegerField()
    bytes_sent = models.BigIntegerField()

    class Meta:
        db_table = "poll_history"
        indexes = [models.Index(fields=["timestamp"]), models.Index(fields=["server", "timestamp"])]

    def __str__(self):
        return f"{self.server_id} {self.timestamp:%Y-%m-%d %H:%M:%S}: {self.active_connections} connections"


class PollQuarter(models.Model):
    """A server's reads summed per 15 minutes (table poll_15min), kept current on every poll.

    15 minutes divides the analytics steps (15, 105 and 450 minutes), so every chart is summed
    from these rows exactly, without scanning every read.
    """

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField()
    bytes_received = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    max_clients = models.PositiveIntegerField(default=0)
    max_connections = models.PositiveIntegerField(default=0)
    polls = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "poll_15min"
        constraints = [models.UniqueConstraint(fields=["server", "bucket"], name="poll_15min_server_bucket")]
        indexes = [models.Index(fields=["bucket"])]

    def __str__(self):
        return f"{self.server_id} {self.bucket:%Y-%m-%d %H:%M}: {self.max_connections} connections"


class RollupBase(models.Model):
    """A usage rollup row (see monitoring.rollups): one client's samples and bytes in one bucket.

    Unique on (client, bucket, server): the rollup key (bucket, client, server) as vpnmonitor.rollups upserts
    it, client first so a client's history is one index range.
    """

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(VpnClient, on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField(help_text="start of the period")
    bytes_received = models.BigIntegerField()
    bytes_sent = models.BigIntegerField()
    samples = models.PositiveIntegerField()

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.client_id} {self.bucket:%Y-%m-%d %H:%M}: {self.bytes_received}/{self.bytes_sent}"


class StatsHourly(RollupBase):
    class Meta:
        db_table = "stats_hourly"
        constraints = [models.UniqueConstraint(fields=["client", "bucket", "server"], name="stats_hourly_key")]
        indexes = [models.Index(fields=["bucket"])]
        verbose_name_plural = "stats hourly"


class Stats6h(RollupBase):
    class Meta:
        db_table = "stats_6h"
        constraints = [models.UniqueConstraint(fields=["client", "bucket", "server"], name="stats_6h_key")]
        indexes = [models.Index(fields=["bucket"])]
        verbose_name_plural = "stats 6h"


class StatsDaily(RollupBase):
    class Meta:
        db_table = "stats_daily"
        constraints = [models.UniqueConstraint(fields=["client", "bucket", "server"], name="stats_daily_key")]
        indexes = [models.Index(fields=["bucket"])]
        verbose_name_plural = "stats daily"


class RollupState(models.Model):
    """How far each rollup has been computed (its watermark)."""

    table = models.CharField(max_length=32, primary_key=True)
    rolled_until = models.DateTimeField()

    def __str__(self):
        return f"{self.table} until {self.rolled_until:%Y-%m-%d %H:%M}"


class Certificate(models.Model):
    """An issued certificate found in a server's easy-rsa PKI."""

    server = models.ForeignKey(VpnServer, on_delete=models.CASCADE, related_name="certificates")
    file = models.CharField(max_length=255)
    common_name = models.CharField(max_length=255, blank=True)
    serial = models.CharField(max_length=80)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scanned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["not_after", "file"]
        constraints = [models.UniqueConstraint(fields=["server", "file"], name="unique_certificate_file")]

    def __str__(self):
        return self.file


class UserProfile(models.Model):
    """Who is behind a common name (admin-edited; fills the sessions API's user fields)."""

    common_name = models.CharField(max_length=255, unique=True)
    user_id = models.CharField(max_length=100, blank=True)
    user_name = models.CharField(max_length=150, blank=True)
    email = models.EmailField(blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    user_group = models.CharField(max_length=100, blank=True)
    device_name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["common_name"]

    def __str__(self):
        return self.common_name
