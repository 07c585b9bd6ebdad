"""GET /metrics: the collectors each app registers (register(), from its AppConfig.ready()) and the shared
ingestion metrics: HTTP ingest counters, the Celery queue and cache failures.

Everything is read from the database when scraped, so every web process answers the same and nothing is kept
in process memory. Apps' collectors are built per scrape from the ingestion-health report, which is read once.
"""

from __future__ import annotations

import logging

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from vpnmonitor.ingestion_health import celery_queue_lengths, ingest_record_counts, ingestion_health
from vpnmonitor.models import ServiceFailureCounter

logger = logging.getLogger(__name__)

_factories: dict = {}


def register(factory):
    """Declare a collector (call from an AppConfig.ready()): factory(health) is called on every scrape with the
    ingestion-health report (vpnmonitor.ingestion_health) and returns an object with collect(), as
    prometheus_client expects. Collectors are exposed in the order they were registered, before the shared ones."""
    _factories[factory] = None


def collectors():
    return list(_factories)


class IngestionCollector:
    """What every app shares: HTTP ingest, the Celery queue and cache failures."""

    def collect(self):
        yield from self._ingest()
        yield from self._celery()
        yield from self._cache()

    def _ingest(self):
        records = CounterMetricFamily(
            "vpnmonitor_ingest_records", "Records accepted by an HTTP ingest endpoint.", labels=["dataset"])
        batches = CounterMetricFamily(
            "vpnmonitor_ingest_batches", "Batches accepted by an HTTP ingest endpoint.", labels=["dataset"])
        for dataset, (record_count, batch_count) in ingest_record_counts().items():
            records.add_metric([dataset], record_count)
            batches.add_metric([dataset], batch_count)
        yield from (records, batches)

    def _celery(self):
        broker_up = GaugeMetricFamily("vpnmonitor_celery_broker_up", "1 when the Celery broker could be read.")
        length = GaugeMetricFamily(
            "vpnmonitor_celery_queue_length", "Tasks waiting in the Celery queue.", labels=["queue"])
        try:
            lengths = celery_queue_lengths()
        except Exception as exc:  # noqa: BLE001 - an unreadable broker is reported as a metric, not a failed scrape
            logger.warning("could not read the Celery queue length: %s", exc)
            broker_up.add_metric([], 0)
        else:
            broker_up.add_metric([], 1)
            for queue, count in lengths.items():
                length.add_metric([queue], count)
        yield from (broker_up, length)

    def _cache(self):
        failures = CounterMetricFamily(
            "vpnmonitor_cache_failures",
            "Cache operations served without Redis (served as misses; throttling open): failed, or skipped for a "
            "few seconds after a failure. Each process adds its count at most once a minute.")
        row = ServiceFailureCounter.objects.filter(service="cache").values_list("failures", flat=True).first()
        failures.add_metric([], row or 0)
        yield failures



def registry(now=None):
    """A registry of every collector, built per scrape (the process-wide default registry is not used)."""
    health = ingestion_health(now)
    result = CollectorRegistry(auto_describe=False)
    for factory in _factories:
        result.register(factory(health))
    result.register(IngestionCollector())
    return result


def exposition(accept_header="", now=None):
    """(body, content type) for GET /metrics, in the format the scraper asked for (text or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry(now)), content_type
