"""Split the per-(day, domain, error) summary in two: per (day, domain) for the domains and websites
breakdowns, and per (day, error, domain) for failed traffic only, for the errors breakdown.

The old table becomes the errors table (renamed, rows without an error type removed); the new
per-domain table is filled from it before that. Not reversible.
"""

from django.db import migrations, models

CHUNK = 5000


def fill_domain_days(apps, schema_editor):
    from django.db.models import Max, Min, Sum

    alias = schema_editor.connection.alias
    errors = apps.get_model("proxylogs", "TrafficErrorDay").objects.using(alias)
    domains = apps.get_model("proxylogs", "TrafficDomainDay")
    sums = ("count", "bytes_sent", "bytes_received", "error_count", "duration_ms")
    rows = (
        errors.order_by().values("day", "domain")
        .annotate(**{name: Sum(name) for name in sums}, max_concurrency=Max("max_concurrency"),
                  first_seen=Min("first_seen"), last_seen=Max("last_seen"))
        .iterator(chunk_size=CHUNK)
    )
    domains.objects.using(alias).bulk_create((domains(**row) for row in rows), batch_size=CHUNK)


def drop_rows_without_error(apps, schema_editor):
    alias = schema_editor.connection.alias
    apps.get_model("proxylogs", "TrafficErrorDay").objects.using(alias).filter(error="").delete()


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0007_traffic_errors_index_hot"),
    ]

    operations = [
        migrations.RenameModel("TrafficDomainDay", "TrafficErrorDay"),
        migrations.AlterModelOptions(
            name="trafficerrorday",
            options={"verbose_name": "proxy traffic errors per day and domain"},
        ),
        migrations.CreateModel(
            name="TrafficDomainDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("count", models.BigIntegerField(default=0, help_text="Requests")),
                ("bytes_sent", models.BigIntegerField(default=0)),
                ("bytes_received", models.BigIntegerField(default=0)),
                ("error_count", models.BigIntegerField(default=0)),
                ("duration_ms", models.BigIntegerField(default=0)),
                ("max_concurrency", models.BigIntegerField(default=0,
                                                           help_text="Highest concurrency any record reported")),
                ("first_seen", models.DateTimeField(help_text="Earliest record timestamp in this row")),
                ("last_seen", models.DateTimeField(help_text="Latest record timestamp in this row")),
                ("day", models.DateTimeField(help_text="Midnight UTC")),
                ("domain", models.CharField(max_length=255)),
            ],
            options={
                "verbose_name": "proxy traffic per domain and day",
                "constraints": [models.UniqueConstraint(fields=("day", "domain"),
                                                        name="proxylogs_traffic_domain_daily_key")],
                "indexes": [models.Index(fields=["domain", "day"], name="proxylogs_traffic_domain_daily")],
            },
        ),
        migrations.RunPython(fill_domain_days, migrations.RunPython.noop),
        migrations.RunPython(drop_rows_without_error),  # not reversible: the error-free sums are only in the new table
        migrations.RemoveIndex(model_name="trafficerrorday", name="proxylogs_traffic_errors_day"),
        migrations.RemoveIndex(model_name="trafficerrorday", name="proxylogs_traffic_day_domain"),
        migrations.RemoveConstraint(model_name="trafficerrorday", name="proxylogs_traffic_domain_day_key"),
        migrations.AlterField(
            model_name="trafficerrorday",
            name="error",
            field=models.CharField(max_length=200),
        ),
        migrations.AddConstraint(
            model_name="trafficerrorday",
            constraint=models.UniqueConstraint(fields=("day", "error", "domain"), name="proxylogs_traffic_error_day_key"),
        ),
        migrations.AddIndex(
            model_name="trafficerrorday",
            index=models.Index(fields=["domain", "day"], name="proxylogs_traffic_error_domain"),
        ),
    ]
