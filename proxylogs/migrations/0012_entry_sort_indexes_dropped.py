# Keeps only the (timestamp, id) index of ProxyLogEntry's sort indexes. Every imported line paid for the other
# five (client_ip, bytes, destination, http_status and method, each with id): about 9 of the 13 us of server CPU a
# line cost beside the timestamp index. /api/logs serves those sorts with a top-N sort over the table instead;
# LogEntryFilterSet's sort description states what that costs.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('proxylogs', '0011_traffic_moves_to_proxytraffic'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_client_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_dest_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_status_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_bytes_idx'),
        migrations.RemoveIndex(model_name='proxylogentry', name='proxylog_method_idx'),
    ]
