"""Flow reports: one row per unidirectional flow, and the prefixes that name a flow's subscriber."""

import ipaddress

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class FlowReport(models.Model):
    """A unidirectional flow seen by an exporter (IPFIX/NetFlow) or pushed over HTTP.

    Written only through flowreports.services, which keeps the rollups (flowreports.rollups) exact.

    Reads filter on start_time (when the flow began), so every listing index leads with it
    or with the key the filter pins first.
    """

    class Direction(models.TextChoices):
        UPLINK = "uplink", "uplink (from the subscriber)"
        DOWNLINK = "downlink", "downlink (to the subscriber)"
        UNKNOWN = "", "unknown"

    class Action(models.TextChoices):
        ALLOW = "allow", "allow"
        DROP = "drop", "drop"

    subscriber_id = models.CharField(
        max_length=128, blank=True, default="",
        help_text="Subscriber owning the inside address; empty when no prefix or VPN address matched.",
    )
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    destination_ip = models.GenericIPAddressField(null=True, blank=True)
    source_port = models.PositiveIntegerField(null=True, blank=True)
    destination_port = models.PositiveIntegerField(null=True, blank=True)
    protocol = models.PositiveSmallIntegerField(help_text="IANA protocol number (6 TCP, 17 UDP, ...)")
    packets = models.BigIntegerField()
    bytes = models.BigIntegerField()
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    direction = models.CharField(max_length=8, choices=Direction.choices, blank=True, default="")
    action = models.CharField(max_length=5, choices=Action.choices, default=Action.ALLOW)
    exporter = models.CharField(
        max_length=100, blank=True, default="",
        help_text="Where the flow came from: 'udp:<exporter address>/obs <domain>' or 'http'.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    sampling_rate = models.PositiveIntegerField(
        default=1, db_default=1,
        help_text="1 in this many packets was sampled by the exporter (1 = unsampled); packets and bytes are "
                  "already scaled by it.",
    )

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            # Listing (newest first), time windows, retention, group_by=day, and the partial hours
            # at the edges of a window that the hourly rollup does not cover.
            models.Index(fields=["start_time", "id"], name="flowreport_start_id"),
            # subscriber_id filter and group_by=subscriber.
            models.Index(fields=["subscriber_id", "start_time"], name="flowreport_subscriber_start"),
            # source= and destination= filters with an address. They cost the collector about 40% of its
            # insert rate, but without them a rare address is a scan of the whole window (9 s at 10M flows).
            # With the port included, the partial days at a window's edges, which total_count counts from
            # the raw table, are counted from the index alone (on PostgreSQL, once vacuumed).
            models.Index(fields=["source_ip", "start_time"], include=["source_port"], name="flowreport_source_start"),
            models.Index(fields=["destination_ip", "start_time"], include=["destination_port"],
                         name="flowreport_destination_start"),
        ]

    def __str__(self):
        return f"{self.source_ip}:{self.source_port} -> {self.destination_ip}:{self.destination_port} ({self.protocol})"

class FlowReportHourly(models.Model):
    """How many flows began in one UTC hour, per protocol, direction and action (kept at write time).

    total_count and the protocol breakdown read this instead of counting raw flows whenever the
    filters are only a window, protocol, direction and action; the services (through vpnmonitor.rollups)
    keep it equal to the raw table in the same transaction as every insert and delete.
    """

    hour = models.DateTimeField()
    protocol = models.PositiveSmallIntegerField()
    direction = models.CharField(max_length=8, blank=True, default="")
    action = models.CharField(max_length=5)
    flows = models.BigIntegerField()

    class Meta:
        ordering = ["hour", "protocol", "direction", "action"]
        constraints = [models.UniqueConstraint(
            fields=["hour", "protocol", "direction", "action"], name="flowreport_hourly_key",
        )]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h {self.protocol} {self.direction or '-'} {self.action}: {self.flows}"


class EndpointDaily(models.Model):
    """Flows per UTC day, address and port of one end, protocol, direction and action (kept at write time).

    total_count reads it when a source or destination filter is the only one besides a window, protocol,
    direction and action. The port is kept as is, except OTHER_PORT (-1) for the subscriber's own ports
    from 1024 up (ephemeral, not kept one by one) and NO_PORT (-2) for flows without one; see
    flowreports.rollups.
    """

    day = models.DateTimeField(help_text="00:00 UTC of the day.")
    protocol = models.PositiveSmallIntegerField()
    direction = models.CharField(max_length=8, blank=True, default="")
    action = models.CharField(max_length=5)
    flows = models.BigIntegerField()

    class Meta:
        abstract = True


class DestinationRollup(models.Model):
    """The destination end of a rollup row (daily or hourly) and how the row reads."""

    destination_ip = models.GenericIPAddressField()
    destination_port = models.IntegerField(
        help_text="The port; -1 for a downlink flow's port from 1024 up (counted together), -2 for none."
    )

    class Meta:
        abstract = True

    def __str__(self):
        return (f"{self.period} to {self.destination_ip} port {self.destination_port} {self.protocol} "
                f"{self.direction or '-'} {self.action}: {self.flows}")


class FlowReportDestinationDaily(DestinationRollup, EndpointDaily):
    """Flows per day and destination (see EndpointDaily); stats' top uplink destinations read it too."""

    class Meta:
        ordering = ["day", "destination_ip", "destination_port"]
        constraints = [models.UniqueConstraint(
            fields=["day", "destination_ip", "destination_port", "protocol", "direction", "action"],
            name="flowreport_destination_daily_key",
        )]
        # A destination filter reads one address's days, not every row of the window's days.
        indexes = [models.Index(fields=["destination_ip", "day"], name="flowreport_dest_daily_ip")]

    @property
    def period(self):
        return f"{self.day:%Y-%m-%d}"


class FlowReportDestinationHourly(DestinationRollup):
    """Flows per UTC hour and destination, keyed like FlowReportDestinationDaily, for sealed hours only.

    Stats count a window's partial first day (the default window starts at now - 7 d) from these hours
    instead of up to 12 hours of raw flows. The collector does not write them: the seal_destination_hours
    beat task counts each closed hour once (FlowReportSealedHour), and from then on every write keeps
    that hour exact, like the other rollups (see flowreports.rollups). An hour without a seal is never read.
    """

    hour = models.DateTimeField()
    protocol = models.PositiveSmallIntegerField()
    direction = models.CharField(max_length=8, blank=True, default="")
    action = models.CharField(max_length=5)
    flows = models.BigIntegerField()

    class Meta:
        ordering = ["hour", "destination_ip", "destination_port"]
        constraints = [models.UniqueConstraint(
            fields=["hour", "destination_ip", "destination_port", "protocol", "direction", "action"],
            name="flowreport_dest_hourly_key",
        )]
        indexes = [models.Index(fields=["destination_ip", "hour"], name="flowreport_dest_hourly_ip")]

    @property
    def period(self):
        return f"{self.hour:%Y-%m-%d %H}h"


class FlowReportSealedHour(models.Model):
    """An hour whose FlowReportDestinationHourly rows are complete (and kept exact from then on)."""

    hour = models.DateTimeField(unique=True)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hour"]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}h"


class FlowReportSourceDaily(EndpointDaily):
    """Flows per day and source (see EndpointDaily)."""

    source_ip = models.GenericIPAddressField()
    source_port = models.IntegerField(
        help_text="The port; -1 for an uplink flow's port from 1024 up (counted together), -2 for none."
    )

    class Meta:
        ordering = ["day", "source_ip", "source_port"]
        constraints = [models.UniqueConstraint(
            fields=["day", "source_ip", "source_port", "protocol", "direction", "action"],
            name="flowreport_source_daily_key",
        )]
        indexes = [models.Index(fields=["source_ip", "day"], name="flowreport_source_daily_ip")]

    def __str__(self):
        return (f"{self.day:%Y-%m-%d} from {self.source_ip} port {self.source_port} {self.protocol} "
                f"{self.direction or '-'} {self.action}: {self.flows}")


def validate_cidr(value):
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(f"Not a network in CIDR notation ({exc}); e.g. 10.8.0.0/24 or 2001:db8:1::/48.") from None


class SubscriberPrefix(models.Model):
    """An address range that belongs to one subscriber (admin-managed).

    A flow's inside address is matched against these and against the VPN tunnel addresses
    that monitoring knows; the longest prefix wins.
    """

    cidr = models.CharField(
        "network", max_length=49, unique=True, validators=[validate_cidr],
        help_text="IPv4 or IPv6 network, e.g. 10.8.0.0/24, 10.8.0.5/32 or 2001:db8:1::/48.",
    )
    subscriber_id = models.CharField(max_length=128, help_text="The subscriber flows from this network belong to.")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["cidr"]
        verbose_name = "subscriber prefix"
        verbose_name_plural = "subscriber prefixes"

    def __str__(self):
        return f"{self.cidr} → {self.subscriber_id}"

    def save(self, *args, **kwargs):
        # One spelling per network, so the unique constraint catches 2001:DB8::/32 vs 2001:db8::/32.
        try:
            self.cidr = str(ipaddress.ip_network(self.cidr.strip(), strict=True))
        except ValueError:
            pass
        super().save(*args, **kwargs)


class CollectorStatus(models.Model):
    """The counters of one running `manage.py collect_flows`, written every few seconds so /metrics can read them.

    Counters restart from zero when the collector restarts (Prometheus treats that as a counter reset).
    """

    hostname = models.CharField(max_length=255)
    listen = models.CharField(max_length=100, help_text="The bound address, e.g. 0.0.0.0:2055")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set when the collector stopped cleanly.")
    packets_received = models.BigIntegerField(default=0)
    flows_received = models.BigIntegerField(default=0)
    flows_stored = models.BigIntegerField(default=0)
    flows_dropped = models.BigIntegerField(default=0)
    packets_lost = models.BigIntegerField(
        default=0, help_text="Datagrams the kernel discarded because the receive buffer was full (Linux).")
    malformed_packets = models.BigIntegerField(default=0)
    sets_dropped_no_template = models.BigIntegerField(default=0)
    sink_failures = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["hostname", "listen"]
        constraints = [models.UniqueConstraint(fields=["hostname", "listen"], name="collector_status_host_listen")]
        verbose_name = "flow collector status"
        verbose_name_plural = "flow collector statuses"

    def __str__(self):
        return self.name

    @property
    def name(self):
        return f"{self.hostname}/{self.listen}"


SAMPLING_RATE_MAX = 2**31 - 1


class ExporterSampling(models.Model):
    """The sampling rate of an exporter that does not export it: the collector scales its flows by this rate.

    Rates an exporter sends (in its records or its sampling options) take precedence. An empty observation
    domain covers all of the exporter's domains; a row for one domain wins over it.
    """

    exporter = models.GenericIPAddressField(help_text="The exporter's address, as the collector receives it from.")
    observation_domain = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="IPFIX observation domain / NetFlow v9 source id (v5: engine type × 256 + engine id); "
                  "empty for all of the exporter's domains.",
    )
    sampling_rate = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(SAMPLING_RATE_MAX)],
        help_text="1 in this many packets is sampled (1 = unsampled).",
    )
    description = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["exporter", "observation_domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["exporter", "observation_domain"], name="exporter_sampling_domain",
                condition=models.Q(observation_domain__isnull=False),
                violation_error_message="This exporter already has a rate for this observation domain."),
            models.UniqueConstraint(
                fields=["exporter"], name="exporter_sampling_all_domains",
                condition=models.Q(observation_domain__isnull=True),
                violation_error_message="This exporter already has a rate for all its domains."),
        ]
        verbose_name = "exporter sampling rate"

    def __str__(self):
        domain = "all domains" if self.observation_domain is None else f"obs {self.observation_domain}"
        return f"{self.exporter} ({domain}): 1 in {self.sampling_rate}"
