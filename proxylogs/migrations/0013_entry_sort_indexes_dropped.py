# Keeps two of ProxyLogEntry's six sort indexes: (timestamp, id), which serves the default sort, deep pages and
# every time window, and (client_ip, id), which serves a client's details and sort=source_ip. Every imported line
# paid for the other four (bytes, destination, http_status and method, each with id): about 6 us of PostgreSQL's
# CPU per line, of 13 us with all six. /api/logs serves those sorts with a top-N sort over the table instead; the
# descriptions of its sort and offset parameters state what that costs.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('proxylogs', '0012_hourly_rollup_without_triggers'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_dest_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_status_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_bytes_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_method_idx'),
    ]
