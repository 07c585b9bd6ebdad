"""The usage rollups are upserted on (bucket, client, server): the unique key gains the server (a client has one
server, so the rows stay unique; the data is kept)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0003_encrypt_management_password'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='stats6h',
            name='stats_6h_client_bucket',
        ),
        migrations.RemoveConstraint(
            model_name='statsdaily',
            name='stats_daily_client_bucket',
        ),
        migrations.RemoveConstraint(
            model_name='statshourly',
            name='stats_hourly_client_bucket',
        ),
        migrations.AddConstraint(
            model_name='stats6h',
            constraint=models.UniqueConstraint(fields=('client', 'bucket', 'server'), name='stats_6h_key'),
        ),
        migrations.AddConstraint(
            model_name='statsdaily',
            constraint=models.UniqueConstraint(fields=('client', 'bucket', 'server'), name='stats_daily_key'),
        ),
        migrations.AddConstraint(
            model_name='statshourly',
            constraint=models.UniqueConstraint(fields=('client', 'bucket', 'server'), name='stats_hourly_key'),
        ),
    ]
