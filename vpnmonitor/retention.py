"""Retention: each app registers what it keeps; one routine prunes every dataset.

Deletes run in batches of primary keys so that no statement holds a long lock on a
large time-series table, and rows are selected by an indexed time column.

A table partitioned by day (vpnmonitor.partitions, PostgreSQL) is pruned by whole days instead: the cutoff
is moved back to the start of its UTC day, and every partition before it is dropped with its rollup buckets
(no row is deleted one by one, nothing is subtracted). Such a dataset keeps its policy's days and up to one
day more (the rest of the oldest day), until the next day's prune.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.apps import apps
from django.utils import timezone

from vpnmonitor import partitions
from vpnmonitor.models import RetentionPolicy

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


@dataclass(frozen=True)
class Dataset:
    name: str
    model_label: str
    time_field: str
    default_days: int
    description: str = ""
    policy_name: str = ""  # another dataset whose RetentionPolicy applies (derived tables)
    # The owning service's delete of a queryset (returns how many rows it deleted), for tables whose writes
    # keep something else exact, such as rollups; None deletes the rows directly.
    delete: object = None

    @property
    def policy(self):
        return self.policy_name or self.name

    @property
    def model(self):
        return apps.get_model(self.model_label)


_registry: dict[str, Dataset] = {}


def register(name, model_label, time_field, default_days, description="", *, policy="", delete=None):
    """Declare a dataset (call from an AppConfig.ready()).

    policy: the name of another dataset whose retention this one follows (a table derived from
    it that must cover the same period); it then has no policy row of its own.
    delete: the function that deletes a batch (a queryset of the dataset's model) and returns how many
    rows it deleted, when deleting must go through a service (e.g. vpnmonitor.rollups.delete).
    """
    _registry[name] = Dataset(name, model_label, time_field, default_days, description, policy, delete)


def datasets():
    return dict(_registry)


def policy(name):
    """The RetentionPolicy row that governs a dataset, created with its default when missing."""
    dataset = _registry[_registry[name].policy]
    row, _ = RetentionPolicy.objects.get_or_create(
        dataset=dataset.name, defaults={"days": dataset.default_days, "description": dataset.description}
    )
    return row


def retention_days(name):
    return policy(name).days


def set_retention_days(name, days):
    row = policy(name)
    row.days = days
    row.save(update_fields=["days"])
    return row


def ensure_policies():
    for name, dataset in _registry.items():
        if not dataset.policy_name:
            policy(name)


def prune(name, *, now=None, batch_size=BATCH_SIZE):
    """Delete the rows of dataset `name` older than its retention (a partitioned table: the whole days before
    the cutoff's day); return how many."""
    dataset = _registry[name]
    row = policy(name)
    cutoff = (now or timezone.now()) - dt.timedelta(days=row.days)
    if partitions.partitioned(dataset.model):
        cutoff = partitions.day_start(partitions.day_number(cutoff))
        deleted = partitions.drop_before(dataset.model, cutoff)
    else:
        deleted = delete_before(dataset.model, dataset.time_field, cutoff, batch_size=batch_size,
                                delete=dataset.delete)
    if not dataset.policy_name:
        RetentionPolicy.objects.filter(pk=row.pk).update(last_pruned_at=timezone.now(), last_pruned_rows=deleted)
    if deleted:
        logger.info("retention: pruned %s rows of %s older than %s", deleted, name, cutoff.isoformat())
    return deleted


def delete_before(model, time_field, cutoff, *, batch_size=BATCH_SIZE, delete=None):
    """Delete rows whose time_field < cutoff, batch by batch (through `delete` when given); return how many."""
    total = 0
    old = model._base_manager.filter(**{f"{time_field}__lt": cutoff})
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        batch = model._base_manager.filter(pk__in=ids)
        if delete is not None:
            total += delete(batch)
            continue
        _, per_model = batch.delete()
        total += per_model.get(model._meta.label, 0)


def prune_all(*, now=None):
    """Prune every registered dataset; one failing dataset does not stop the others."""
    results = {}
    for name in sorted(_registry):
        try:
            results[name] = prune(name, now=now)
        except Exception:  # noqa: BLE001 - logged, and the other datasets still get pruned
            logger.exception("retention: pruning %s failed", name)
            results[name] = None
    return results
