"""proxytraffic models: proxy traffic pre-aggregated by proxy workers, and its all-tenant summaries.

The tables were created by proxylogs (migrations 0002-0008) and keep their names.
"""

from django.db import models

TRAFFIC_KEY_FIELDS = (
    "bucket", "user_id", "order_id", "domain", "error", "worker", "peer_id", "port", "protocol", "ip_out", "ip_from",
)


class TrafficSums(models.Model):
    """What every traffic table sums per row: the buckets and the all-tenant summaries derived from them."""

    count = models.BigIntegerField(default=0, help_text="Requests")
    bytes_sent = models.BigIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(default=0)
    max_concurrency = models.BigIntegerField(default=0, help_text="Highest concurrency any record reported")
    first_seen = models.DateTimeField(help_text="Earliest record timestamp in this row")
    last_seen = models.DateTimeField(help_text="Latest record timestamp in this row")

    class Meta:
        abstract = True


class TrafficBucket(TrafficSums):
    """The records proxy workers push, summed per 15 minutes and per key (POST /analytics/ingest).

    One row per (15-minute bucket, user, order, domain, error, worker, peer, port, protocol,
    outgoing and client address). Text key columns hold "" rather than NULL so that the
    unique constraint, which the ingest upsert relies on, treats "no value" as one value.
    first_seen/last_seen are the earliest and latest record timestamps summed into the row.
    """

    bucket = models.DateTimeField(help_text="Start of the 15-minute bucket (UTC)")
    user_id = models.BigIntegerField(help_text="Tenant (the proxy account)")
    order_id = models.BigIntegerField()
    domain = models.CharField(max_length=255)
    error = models.CharField(max_length=200, blank=True, default="")
    worker = models.CharField(max_length=100, blank=True, default="")
    peer_id = models.CharField(max_length=100, blank=True, default="")
    port = models.PositiveIntegerField(default=0)
    protocol = models.CharField(max_length=16, blank=True, default="")
    ip_out = models.CharField(max_length=45, blank=True, default="", help_text="Outgoing address of the proxy")
    ip_from = models.CharField(max_length=45, blank=True, default="", help_text="Client address")

    class Meta:
        db_table = "proxylogs_trafficbucket"
        verbose_name = "proxy traffic bucket"
        constraints = [
            models.UniqueConstraint(fields=list(TRAFFIC_KEY_FIELDS), name="proxylogs_traffic_bucket_key"),
        ]
        indexes = [
            # Every read filters on a bucket range (the unique index leads with bucket), then
            # optionally on tenant, order or domain.
            models.Index(fields=["user_id", "bucket"], name="proxylogs_traffic_user"),
            models.Index(fields=["order_id", "bucket"], name="proxylogs_traffic_order"),
            models.Index(fields=["domain", "bucket"], name="proxylogs_traffic_domain"),
        ]

    def __str__(self):
        return f"{self.bucket:%Y-%m-%d %H:%M} user {self.user_id} order {self.order_id} {self.domain}"


class TrafficTotal(TrafficSums):
    """All tenants' traffic per 15-minute bucket, kept with TrafficBucket in the same transaction.

    The charts read it when no tenant, order or domain narrows them, so an operator's two-month
    overview sums a few thousand rows instead of every bucket row.
    """

    bucket = models.DateTimeField(unique=True)

    class Meta:
        db_table = "proxylogs_traffictotal"
        verbose_name = "proxy traffic total"

    def __str__(self):
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.count} requests"


class TrafficDomainDay(TrafficSums):
    """All tenants' traffic per UTC day and domain, kept with TrafficBucket in the same transaction.

    The domains and websites breakdowns read it when no tenant or order narrows them and the range
    is whole days, which is what the spec's date-only from/to give: for two months that is one row
    per domain and day, narrow enough to scan and group quickly.
    """

    day = models.DateTimeField(help_text="Midnight UTC")
    domain = models.CharField(max_length=255)

    class Meta:
        db_table = "proxylogs_trafficdomainday"
        verbose_name = "proxy traffic per domain and day"
        constraints = [
            models.UniqueConstraint(fields=["day", "domain"], name="proxylogs_traffic_domain_daily_key"),
        ]
        indexes = [models.Index(fields=["domain", "day"], name="proxylogs_traffic_domain_daily")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d} {self.domain}"


class TrafficErrorDay(TrafficSums):
    """All tenants' failed traffic per UTC day, error type and domain (records with an error type only),
    kept with TrafficBucket in the same transaction: the errors breakdown reads it as TrafficDomainDay
    serves the others."""

    day = models.DateTimeField(help_text="Midnight UTC")
    error = models.CharField(max_length=200)
    domain = models.CharField(max_length=255)

    class Meta:
        db_table = "proxylogs_trafficerrorday"
        verbose_name = "proxy traffic errors per day and domain"
        constraints = [
            models.UniqueConstraint(fields=["day", "error", "domain"], name="proxylogs_traffic_error_day_key"),
        ]
        indexes = [models.Index(fields=["domain", "day"], name="proxylogs_traffic_error_domain")]

    def __str__(self):
        return f"{self.day:%Y-%m-%d} {self.error} {self.domain}"
