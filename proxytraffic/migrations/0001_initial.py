"""The proxy-traffic models, moved here from proxylogs (its migration 0011) with their tables and rows.

State only: the tables were made by proxylogs' migrations 0002-0008 and keep their names (Meta.db_table),
so an existing database keeps its rows and a fresh one has the tables once. The models' content types
follow them, so that permissions granted on them and admin history stay attached.
"""

from django.db import migrations, models

MODELS = ("trafficbucket", "traffictotal", "trafficdomainday", "trafficerrorday")


def _move_content_types(apps, schema_editor, source, target):
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    present = set(content_types.filter(app_label=target, model__in=MODELS).values_list("model", flat=True))
    content_types.filter(app_label=source, model__in=MODELS).exclude(model__in=present).update(app_label=target)


def content_types_forward(apps, schema_editor):
    _move_content_types(apps, schema_editor, "proxylogs", "proxytraffic")


def content_types_back(apps, schema_editor):
    _move_content_types(apps, schema_editor, "proxytraffic", "proxylogs")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("proxylogs", "0011_traffic_moves_to_proxytraffic"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TrafficTotal',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('count', models.BigIntegerField(default=0, help_text='Requests')),
                        ('bytes_sent', models.BigIntegerField(default=0)),
                        ('bytes_received', models.BigIntegerField(default=0)),
                        ('error_count', models.BigIntegerField(default=0)),
                        ('duration_ms', models.BigIntegerField(default=0)),
                        ('max_concurrency', models.BigIntegerField(default=0, help_text='Highest concurrency any record reported')),
                        ('first_seen', models.DateTimeField(help_text='Earliest record timestamp in this row')),
                        ('last_seen', models.DateTimeField(help_text='Latest record timestamp in this row')),
                        ('bucket', models.DateTimeField(unique=True)),
                    ],
                    options={
                        'verbose_name': 'proxy traffic total',
                        'db_table': 'proxylogs_traffictotal',
                    },
                ),
                migrations.CreateModel(
                    name='TrafficBucket',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('count', models.BigIntegerField(default=0, help_text='Requests')),
                        ('bytes_sent', models.BigIntegerField(default=0)),
                        ('bytes_received', models.BigIntegerField(default=0)),
                        ('error_count', models.BigIntegerField(default=0)),
                        ('duration_ms', models.BigIntegerField(default=0)),
                        ('max_concurrency', models.BigIntegerField(default=0, help_text='Highest concurrency any record reported')),
                        ('first_seen', models.DateTimeField(help_text='Earliest record timestamp in this row')),
                        ('last_seen', models.DateTimeField(help_text='Latest record timestamp in this row')),
                        ('bucket', models.DateTimeField(help_text='Start of the 15-minute bucket (UTC)')),
                        ('user_id', models.BigIntegerField(help_text='Tenant (the proxy account)')),
                        ('order_id', models.BigIntegerField()),
                        ('domain', models.CharField(max_length=255)),
                        ('error', models.CharField(blank=True, default='', max_length=200)),
                        ('worker', models.CharField(blank=True, default='', max_length=100)),
                        ('peer_id', models.CharField(blank=True, default='', max_length=100)),
                        ('port', models.PositiveIntegerField(default=0)),
                        ('protocol', models.CharField(blank=True, default='', max_length=16)),
                        ('ip_out', models.CharField(blank=True, default='', help_text='Outgoing address of the proxy', max_length=45)),
                        ('ip_from', models.CharField(blank=True, default='', help_text='Client address', max_length=45)),
                    ],
                    options={
                        'verbose_name': 'proxy traffic bucket',
                        'db_table': 'proxylogs_trafficbucket',
                        'indexes': [models.Index(fields=['user_id', 'bucket'], name='proxylogs_traffic_user'), models.Index(fields=['order_id', 'bucket'], name='proxylogs_traffic_order'), models.Index(fields=['domain', 'bucket'], name='proxylogs_traffic_domain')],
                        'constraints': [models.UniqueConstraint(fields=('bucket', 'user_id', 'order_id', 'domain', 'error', 'worker', 'peer_id', 'port', 'protocol', 'ip_out', 'ip_from'), name='proxylogs_traffic_bucket_key')],
                    },
                ),
                migrations.CreateModel(
                    name='TrafficDomainDay',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('count', models.BigIntegerField(default=0, help_text='Requests')),
                        ('bytes_sent', models.BigIntegerField(default=0)),
                        ('bytes_received', models.BigIntegerField(default=0)),
                        ('error_count', models.BigIntegerField(default=0)),
                        ('duration_ms', models.BigIntegerField(default=0)),
                        ('max_concurrency', models.BigIntegerField(default=0, help_text='Highest concurrency any record reported')),
                        ('first_seen', models.DateTimeField(help_text='Earliest record timestamp in this row')),
                        ('last_seen', models.DateTimeField(help_text='Latest record timestamp in this row')),
                        ('day', models.DateTimeField(help_text='Midnight UTC')),
                        ('domain', models.CharField(max_length=255)),
                    ],
                    options={
                        'verbose_name': 'proxy traffic per domain and day',
                        'db_table': 'proxylogs_trafficdomainday',
                        'indexes': [models.Index(fields=['domain', 'day'], name='proxylogs_traffic_domain_daily')],
                        'constraints': [models.UniqueConstraint(fields=('day', 'domain'), name='proxylogs_traffic_domain_daily_key')],
                    },
                ),
                migrations.CreateModel(
                    name='TrafficErrorDay',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('count', models.BigIntegerField(default=0, help_text='Requests')),
                        ('bytes_sent', models.BigIntegerField(default=0)),
                        ('bytes_received', models.BigIntegerField(default=0)),
                        ('error_count', models.BigIntegerField(default=0)),
                        ('duration_ms', models.BigIntegerField(default=0)),
                        ('max_concurrency', models.BigIntegerField(default=0, help_text='Highest concurrency any record reported')),
                        ('first_seen', models.DateTimeField(help_text='Earliest record timestamp in this row')),
                        ('last_seen', models.DateTimeField(help_text='Latest record timestamp in this row')),
                        ('day', models.DateTimeField(help_text='Midnight UTC')),
                        ('error', models.CharField(max_length=200)),
                        ('domain', models.CharField(max_length=255)),
                    ],
                    options={
                        'verbose_name': 'proxy traffic errors per day and domain',
                        'db_table': 'proxylogs_trafficerrorday',
                        'indexes': [models.Index(fields=['domain', 'day'], name='proxylogs_traffic_error_domain')],
                        'constraints': [models.UniqueConstraint(fields=('day', 'error', 'domain'), name='proxylogs_traffic_error_day_key')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_forward, content_types_back),
    ]
