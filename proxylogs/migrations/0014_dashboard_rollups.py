"""The tables of proxylogs.dashboard_rollups (0015 fills them)."""

import vpnmonitor.rollups
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('proxylogs', '0013_entry_sort_indexes_dropped'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProxyLogAgentHour',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('user_agent', models.TextField(null=True)),
                ('user_agent_category', models.CharField(max_length=16, null=True)),
                ('requests', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('hour', 'user_agent', 'user_agent_category'), name='proxylog_agent_hour_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogClientDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateTimeField()),
                ('client_ip', models.GenericIPAddressField(null=True)),
                ('client_host', models.CharField(max_length=255, null=True)),
                ('client_network', models.CharField(max_length=45)),
                ('requests', models.BigIntegerField()),
                ('blocked', models.BigIntegerField()),
                ('bytes', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('day', 'client_ip', 'client_host', 'client_network'), name='proxylog_client_day_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogClientHour',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('client_ip', models.GenericIPAddressField(null=True)),
                ('client_host', models.CharField(max_length=255, null=True)),
                ('client_network', models.CharField(max_length=45)),
                ('requests', models.BigIntegerField()),
                ('blocked', models.BigIntegerField()),
                ('bytes', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('hour', 'client_ip', 'client_host', 'client_network'), name='proxylog_client_hour_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogClientSeen',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('bucket', models.DateTimeField()),
                ('client_ip', models.GenericIPAddressField(null=True)),
                ('client_host', models.CharField(max_length=255, null=True)),
                ('client_network', models.CharField(max_length=45)),
                ('last_seen', models.DateTimeField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('bucket', 'client_ip', 'client_host', 'client_network'), name='proxylog_client_seen_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogDestinationDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateTimeField()),
                ('destination', models.CharField(max_length=300, null=True)),
                ('destination_host', models.CharField(max_length=255, null=True)),
                ('domain', models.CharField(max_length=255, null=True)),
                ('destination_is_ip', models.BooleanField()),
                ('waf_category', models.CharField(max_length=64, null=True)),
                ('requests', models.BigIntegerField()),
                ('blocked', models.BigIntegerField()),
                ('bytes', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('day', 'destination', 'destination_host', 'domain', 'destination_is_ip', 'waf_category'), name='proxylog_destination_day_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogDestinationHour',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('destination', models.CharField(max_length=300, null=True)),
                ('destination_host', models.CharField(max_length=255, null=True)),
                ('domain', models.CharField(max_length=255, null=True)),
                ('destination_is_ip', models.BooleanField()),
                ('waf_category', models.CharField(max_length=64, null=True)),
                ('requests', models.BigIntegerField()),
                ('blocked', models.BigIntegerField()),
                ('bytes', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('hour', 'destination', 'destination_host', 'domain', 'destination_is_ip', 'waf_category'), name='proxylog_destination_hour_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogHostClientSeen',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('bucket', models.DateTimeField()),
                ('destination_host', models.CharField(max_length=255, null=True)),
                ('client_ip', models.GenericIPAddressField(null=True)),
                ('client_host', models.CharField(max_length=255, null=True)),
                ('user', models.CharField(max_length=255, null=True)),
                ('domain', models.CharField(max_length=255, null=True)),
                ('last_seen', models.DateTimeField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('bucket', 'destination_host', 'client_ip', 'client_host', 'user', 'domain'), name='proxylog_host_client_seen_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogHostSeen',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('bucket', models.DateTimeField()),
                ('destination_host', models.CharField(max_length=255, null=True)),
                ('domain', models.CharField(max_length=255, null=True)),
                ('last_seen', models.DateTimeField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('bucket', 'destination_host', 'domain'), name='proxylog_host_seen_key')],
            },
        ),
        migrations.CreateModel(
            name='ProxyLogRequestHour',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('method', models.CharField(max_length=32)),
                ('http_status', models.PositiveSmallIntegerField()),
                ('result_code', models.CharField(max_length=64)),
                ('file_extension', models.CharField(max_length=16, null=True)),
                ('requests', models.BigIntegerField()),
                ('blocked', models.BigIntegerField()),
                ('bytes', models.BigIntegerField()),
            ],
            options={
                'constraints': [vpnmonitor.rollups.RollupKey(fields=('hour', 'method', 'http_status', 'result_code', 'file_extension'), name='proxylog_request_hour_key')],
            },
        ),
    ]
