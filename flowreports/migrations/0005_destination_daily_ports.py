from django.db import migrations, models


def refill(apps, schema_editor):
    """Recount the daily destinations from the stored flows: every direction now, per destination port."""
    import datetime as dt

    from django.db.models import Case, Count, F, IntegerField, Value, When
    from django.db.models.functions import Trunc

    alias = schema_editor.connection.alias
    raw = apps.get_model("flowreports", "FlowReport")._base_manager.using(alias).order_by()
    daily = apps.get_model("flowreports", "FlowReportDestinationDaily")
    daily.objects.using(alias).all().delete()
    port = Case(
        When(destination_port__isnull=True, then=Value(-2)),
        When(direction="downlink", destination_port__gte=1024, then=Value(-1)),
        default=F("destination_port"), output_field=IntegerField(),
    )
    daily.objects.using(alias).bulk_create((
        daily(day=row["d"], destination_ip=row["destination_ip"], destination_port=row["p"],
              protocol=row["protocol"], direction=row["direction"], action=row["action"], flows=row["n"])
        for row in raw.filter(destination_ip__isnull=False)
        .annotate(d=Trunc("start_time", "day", tzinfo=dt.UTC), p=port)
        .values("d", "destination_ip", "p", "protocol", "direction", "action").annotate(n=Count("pk")).iterator()
    ), batch_size=5000)


class Migration(migrations.Migration):

    dependencies = [
        ("flowreports", "0004_collector_packets_lost"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="flowreportdestinationdaily",
            name="flowreport_destination_daily_key",
        ),
        migrations.AddField(
            model_name="flowreportdestinationdaily",
            name="destination_port",
            field=models.IntegerField(
                default=-2,
                help_text="The port; -1 for a downlink flow's port from 1024 up (counted together), -2 for none.",
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="flowreportdestinationdaily",
            name="direction",
            field=models.CharField(blank=True, default="", max_length=8),
        ),
        migrations.AlterModelOptions(
            name="flowreportdestinationdaily",
            options={"ordering": ["day", "destination_ip", "destination_port"]},
        ),
        migrations.RunPython(refill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="flowreportdestinationdaily",
            constraint=models.UniqueConstraint(
                fields=("day", "destination_ip", "destination_port", "protocol", "direction", "action"),
                name="flowreport_destination_daily_key",
            ),
        ),
    ]
