"""proxylogs models: Squid access-log entries and their sources, the security profile and the catalogues."""

from django.db import models
from django.db.models import Sum
from django.utils import timezone

from vpnmonitor.partitions import ClosedDayIndex
from vpnmonitor.rollups import RollupKey

# ---- Proxy access logs (Squid) ----


class LogSource(models.Model):
    """A Squid access log on this host that the beat task tails, with its checkpoint."""

    class Format(models.TextChoices):
        SQUID = "squid", "squid (native)"
        COMMON = "common", "common"
        COMBINED = "combined", "combined (with Referer and User-Agent)"

    name = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=500, help_text="Absolute path of the access log, e.g. /var/log/squid/access.log")
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.SQUID)
    enabled = models.BooleanField(default=True)
    # Checkpoint of vpnmonitor.tailing: device, inode, offset after the last stored line, head fingerprint.
    # Saved in the same transaction as the rows it covers, so no line is stored twice or skipped.
    checkpoint = models.JSONField(default=dict, blank=True, editable=False)
    last_import_at = models.DateTimeField(null=True, blank=True, editable=False,
                                          help_text="When the source was last read without an error.")
    lines_imported = models.BigIntegerField(default=0, editable=False)
    lines_rejected = models.BigIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.path})"

    @property
    def checkpoint_inode(self):
        return (self.checkpoint or {}).get("inode")

    @property
    def checkpoint_offset(self):
        return (self.checkpoint or {}).get("offset")


class ProxyLogQuerySet(models.QuerySet):
    unfiltered_count_is_cheap = True

    def count(self):
        # COUNT(*) over ten million rows takes PostgreSQL hundreds of milliseconds. The hourly rollup is kept
        # exact by the services in the transaction of every insert, delete and truncate (see
        # proxylogs.rollups), so an unfiltered count is a sum over a few hundred rollup rows instead.
        if not self.query.where and not self.query.is_sliced and not self.query.distinct and not self.query.combinator:
            return ProxyLogHour.objects.aggregate(total=Sum("total"))["total"] or 0
        return super().count()


# Indexes of each day's partition once the day is over (PostgreSQL; see ProxyLogEntry.Meta).
CLOSED_DAY_INDEXES = (ClosedDayIndex("client", ("client_ip", "id")),)


class ProxyLogEntry(models.Model):
    """One line of a proxy access log. Immutable once stored.

    Inserted and deleted only by proxylogs.services (store_rows, delete_entries, clear_logs), which keep the
    hourly rollup ProxyLogHour exact in the same transaction: an insert or delete through the ORM anywhere
    else would leave the rollup, and what reads it (the unfiltered count, stats, deep pages), wrong. The admin
    shows entries read-only; deleting a LogSource only empties `source`, which the rollup does not count.
    """

    timestamp = models.DateTimeField(help_text="When the request completed (UTC, millisecond precision).")
    elapsed_ms = models.IntegerField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True, help_text="empty when the client is logged by name")
    client_host = models.CharField(max_length=255, null=True, blank=True,
                                   help_text="the client's host name as logged (Squid log_fqdn, %>A), else empty")
    # mask_client(client): the IP's network, or a keyed hash of the host name; kept so that GDPR-mode aggregates
    # group in the database.
    client_network = models.CharField(max_length=45)
    user = models.CharField(max_length=255, null=True, blank=True)
    method = models.CharField(max_length=32)
    url = models.TextField()
    destination = models.CharField(max_length=300, null=True, blank=True,
                                   help_text="host or host:port as requested (CONNECT: host:port)")
    destination_host = models.CharField(max_length=255, null=True, blank=True)
    destination_port = models.IntegerField(null=True, blank=True)
    destination_is_ip = models.BooleanField(default=False)
    domain = models.CharField(max_length=255, null=True, blank=True,
                              help_text="Registrable domain of the destination (Public Suffix List)")
    file_extension = models.CharField(max_length=16, null=True, blank=True)
    http_status = models.PositiveSmallIntegerField()
    result_code = models.CharField(max_length=64, help_text="Squid result code, e.g. TCP_MISS, TCP_DENIED")
    bytes = models.BigIntegerField()
    hierarchy = models.CharField(max_length=64, blank=True)
    peer = models.CharField(max_length=255, null=True, blank=True)
    mime_type = models.CharField(max_length=255, null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    user_agent_category = models.CharField(max_length=16, null=True, blank=True)
    referer = models.TextField(null=True, blank=True)
    blocked = models.BooleanField(default=False, help_text="HTTP 403 or a DENIED/BLOCKED result (407 is not)")
    waf_category = models.CharField(max_length=64, null=True, blank=True)
    # Nothing reads entries by source, so the column has no index: every imported row would pay to maintain one.
    source = models.ForeignKey(LogSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               db_constraint=False, db_index=False)

    objects = ProxyLogQuerySet.as_manager()

    class Meta:
        verbose_name = "proxy log entry"
        verbose_name_plural = "proxy log entries"
        # Every index costs each imported line its upkeep, so only two orders have one: time, which serves
        # /api/logs' default sort (id breaks ties so that pages are stable), its deep pages and every time window,
        # and the client address, which serves a client's details and sort=source_ip. The other sorts of
        # /api/logs are a top-N sort over the table (see filtersets.LogEntryFilterSet). On PostgreSQL the client
        # index is not the table's: each day's partition gets it once the day is over (CLOSED_DAY_INDEXES,
        # migration 0020), so the day being imported pays for the time index alone; SQLite keeps it from 0001.
        indexes = [
            models.Index(fields=["timestamp", "id"], name="proxylog_time_idx"),
        ]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.client} {self.method} {self.destination or self.url}"

    @property
    def client(self):
        """The client as logged: its IP address, or its host name."""
        return self.client_ip if self.client_ip is not None else self.client_host


class ProxyLogHour(models.Model):
    """Hourly counts of ProxyLogEntry, kept exact at write time by the services (see proxylogs.rollups)."""

    hour = models.DateTimeField(unique=True)
    total = models.BigIntegerField(default=0)
    blocked = models.BigIntegerField(default=0)
    ip_blocked = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["hour"]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.total} requests"


# Hourly rollups of ProxyLogEntry, and its last-seen tables, for the dashboards and summaries: declared and
# kept in proxylogs.dashboard_rollups (see its docstring). Their dimensions may be NULL, as the entries' are.


class ProxyLogClientHour(models.Model):
    """Requests, refusals and bytes per hour and client."""

    hour = models.DateTimeField()
    client_ip = models.GenericIPAddressField(null=True)
    client_host = models.CharField(max_length=255, null=True)
    client_network = models.CharField(max_length=45)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["hour", "client_ip", "client_host", "client_network"],
                                 name="proxylog_client_hour_key")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.client_ip or self.client_host}: {self.requests}"


class ProxyLogClientDay(models.Model):
    """Requests, refusals and bytes per day (UTC) and client: ProxyLogClientHour's whole days."""

    day = models.DateTimeField()
    client_ip = models.GenericIPAddressField(null=True)
    client_host = models.CharField(max_length=255, null=True)
    client_network = models.CharField(max_length=45)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["day", "client_ip", "client_host", "client_network"],
                                 name="proxylog_client_day_key")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d} {self.client_ip or self.client_host}: {self.requests}"


class ProxyLogDestinationDay(models.Model):
    """Requests, refusals and bytes per day (UTC) and destination: ProxyLogDestinationHour's whole days."""

    day = models.DateTimeField()
    destination = models.CharField(max_length=300, null=True)
    destination_host = models.CharField(max_length=255, null=True)
    domain = models.CharField(max_length=255, null=True)
    destination_is_ip = models.BooleanField()
    waf_category = models.CharField(max_length=64, null=True)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["day", "destination", "destination_host", "domain", "destination_is_ip",
                                         "waf_category"], name="proxylog_destination_day_key")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d} {self.destination}: {self.requests}"


class ProxyLogDestinationHour(models.Model):
    """Requests, refusals and bytes per hour and destination (with its host, domain and WAF category)."""

    hour = models.DateTimeField()
    destination = models.CharField(max_length=300, null=True)
    destination_host = models.CharField(max_length=255, null=True)
    domain = models.CharField(max_length=255, null=True)
    destination_is_ip = models.BooleanField()
    waf_category = models.CharField(max_length=64, null=True)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["hour", "destination", "destination_host", "domain", "destination_is_ip",
                                         "waf_category"], name="proxylog_destination_hour_key")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.destination}: {self.requests}"


class ProxyLogRequestHour(models.Model):
    """Requests, refusals and bytes per hour, method, status, result code and file type."""

    hour = models.DateTimeField()
    method = models.CharField(max_length=32)
    http_status = models.PositiveSmallIntegerField()
    result_code = models.CharField(max_length=64)
    file_extension = models.CharField(max_length=16, null=True)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["hour", "method", "http_status", "result_code", "file_extension"],
                                 name="proxylog_request_hour_key")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.method} {self.http_status}: {self.requests}"


class ProxyLogRequestDay(models.Model):
    """Requests, refusals and bytes per day (UTC), method, status, result code and file type: ProxyLogRequestHour's
    whole days."""

    day = models.DateTimeField()
    method = models.CharField(max_length=32)
    http_status = models.PositiveSmallIntegerField()
    result_code = models.CharField(max_length=64)
    file_extension = models.CharField(max_length=16, null=True)
    requests = models.BigIntegerField()
    blocked = models.BigIntegerField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["day", "method", "http_status", "result_code", "file_extension"],
                                 name="proxylog_request_day_key")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d} {self.method} {self.http_status}: {self.requests}"


class ProxyLogAgentHour(models.Model):
    """Requests per hour and User-Agent (its first dashboard_rollups.AGENT_LENGTH characters) or none."""

    hour = models.DateTimeField()
    user_agent = models.TextField(null=True)
    user_agent_category = models.CharField(max_length=16, null=True)
    requests = models.BigIntegerField()

    class Meta:
        constraints = [RollupKey(fields=["hour", "user_agent", "user_agent_category"],
                                 name="proxylog_agent_hour_key")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.user_agent}: {self.requests}"


class ProxyLogClientSeen(models.Model):
    """When each client last made a request (the table has one bucket, for all time)."""

    bucket = models.DateTimeField()
    client_ip = models.GenericIPAddressField(null=True)
    client_host = models.CharField(max_length=255, null=True)
    client_network = models.CharField(max_length=45)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [RollupKey(fields=["bucket", "client_ip", "client_host", "client_network"],
                                 name="proxylog_client_seen_key")]

    def __str__(self):
        return f"{self.client_ip or self.client_host} last seen {self.last_seen:%Y-%m-%d %H:%M:%S}"


class ProxyLogHostSeen(models.Model):
    """When each destination host (with its registrable domain) was last requested (one bucket, for all time)."""

    bucket = models.DateTimeField()
    destination_host = models.CharField(max_length=255, null=True)
    domain = models.CharField(max_length=255, null=True)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [RollupKey(fields=["bucket", "destination_host", "domain"], name="proxylog_host_seen_key")]

    def __str__(self):
        return f"{self.destination_host} last seen {self.last_seen:%Y-%m-%d %H:%M:%S}"


class ProxyLogHostClientSeen(models.Model):
    """When each client (and user) last requested each destination host (one bucket, for all time)."""

    bucket = models.DateTimeField()
    destination_host = models.CharField(max_length=255, null=True)
    client_ip = models.GenericIPAddressField(null=True)
    client_host = models.CharField(max_length=255, null=True)
    user = models.CharField(max_length=255, null=True)
    domain = models.CharField(max_length=255, null=True)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [RollupKey(fields=["bucket", "destination_host", "client_ip", "client_host", "user", "domain"],
                                 name="proxylog_host_client_seen_key")]

    def __str__(self):
        return f"{self.destination_host} by {self.client_ip or self.client_host} {self.last_seen:%Y-%m-%d %H:%M:%S}"


class LogImport(models.Model):
    """One import that read lines: a `manage.py import_proxy_log` run or a tail of a LogSource."""

    class Status(models.TextChoices):
        SUCCESS = "success", "succeeded"
        FAILED = "failed", "failed"

    source = models.ForeignKey(LogSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    path = models.CharField(max_length=500)
    format = models.CharField(max_length=16, choices=LogSource.Format.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCESS)
    lines_imported = models.BigIntegerField(default=0)
    lines_rejected = models.BigIntegerField(default=0)
    rejected_samples = models.JSONField(default=list, blank=True,
                                        help_text="The first bad lines: [line number, reason]")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.path}: {self.lines_imported} imported"


class SecurityProfile(models.Model):
    """The controls the monitored proxy has, as the admin describes them; the security score weighs them."""

    ip_blacklist = models.BooleanField("IP blacklist", default=False)
    domain_blacklist = models.BooleanField("domain blacklist", default=False)
    direct_ip_blocking = models.BooleanField("direct-IP blocking", default=False,
                                             help_text="Requests and CONNECTs to raw IP addresses are refused.")
    content_filtering = models.BooleanField(default=False)
    waf = models.BooleanField("WAF", default=False)
    https_inspection = models.BooleanField("HTTPS inspection", default=False,
                                           help_text="TLS is intercepted (ssl-bump), so HTTPS requests are seen.")
    rate_limiting = models.BooleanField(default=False)
    default_password_changed = models.BooleanField(default=False)
    time_restrictions = models.BooleanField(default=False)
    ip_blacklist_count = models.PositiveIntegerField(
        "IP blacklist entries", default=0, help_text="How many addresses and networks the IP blacklist holds.")
    domain_blacklist_count = models.PositiveIntegerField("domain blacklist entries", default=0,
                                                         help_text="How many domains the domain blacklist holds.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "security profile"

    def __str__(self):
        return "Security profile of the monitored proxy"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls):
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class ShadowItService(models.Model):
    """A service of the shadow-IT catalogue, recognised by the host names it uses."""

    class Risk(models.TextChoices):
        LOW = "low", "low"
        MEDIUM = "medium", "medium"
        HIGH = "high", "high"

    name = models.CharField(max_length=100, unique=True)
    category = models.CharField(max_length=64)
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.MEDIUM)
    domains = models.TextField(help_text="One host name per line; it matches itself and its subdomains.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "shadow-IT service"

    def __str__(self):
        return self.name

    @property
    def domain_list(self):
        return [line.strip().lower().rstrip(".") for line in self.domains.splitlines() if line.strip()]


class WafCategory(models.Model):
    """A WAF rule category: imported entries whose URL matches its pattern are tagged with its name."""

    name = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    pattern = models.TextField(help_text="Python regular expression searched in the URL (case-insensitive).")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "WAF category"
        verbose_name_plural = "WAF categories"

    def __str__(self):
        return self.label
