"""The daily requests rollup (ProxyLogRequestDay), filled from the hourly one's rows, in SQL.

A migration of its own: the rollup's unique key, which the fill's upsert needs, is created when 0018 ends. The
hourly rows are exact, and whole days of them are what the daily rollup holds, so the entries need not be read.
"""

from django.db import migrations
from django.db.models import Sum

DAY = 86400
KEYS = ("method", "http_status", "result_code", "file_extension")


def fill(apps, schema_editor):
    alias = schema_editor.connection.alias
    hours = apps.get_model("proxylogs", "ProxyLogRequestHour").objects.using(alias)
    if not hours.exists():
        return
    # The live declarations: the current model and rollup, which the table matches at this point.
    from proxylogs import dashboard_rollups
    from vpnmonitor import rollups
    from vpnmonitor.timeseries import BucketStart

    days = (hours.order_by().annotate(rk_day=BucketStart("hour", DAY)).values("rk_day", *KEYS)
            .annotate(rm0=Sum("requests"), rm1=Sum("blocked"), rm2=Sum("bytes"))
            .order_by("rk_day", *KEYS).values_list("rk_day", *KEYS, "rm0", "rm1", "rm2"))
    sql, params = days.query.sql_with_params()
    rollups.upsert_select(dashboard_rollups.REQUESTS_DAILY, sql, params, using=alias)


class Migration(migrations.Migration):

    dependencies = [
        ("proxylogs", "0018_request_day_rollup"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
