"""Management passwords are stored as Fernet tokens: widen the column, encrypt what is there, then switch the field."""

from django.db import migrations, models

import vpnmonitor.secrets_at_rest


def encrypt_existing(apps, schema_editor):
    VpnServer = apps.get_model("monitoring", "VpnServer")
    for pk, password in VpnServer.objects.exclude(management_password="").values_list("pk", "management_password"):
        VpnServer.objects.filter(pk=pk).update(management_password=vpnmonitor.secrets_at_rest.encrypt(password))


def decrypt_existing(apps, schema_editor):
    VpnServer = apps.get_model("monitoring", "VpnServer")
    for pk, token in VpnServer.objects.exclude(management_password="").values_list("pk", "management_password"):
        VpnServer.objects.filter(pk=pk).update(management_password=vpnmonitor.secrets_at_rest.decrypt(token))


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0002_server_time_zone"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vpnserver", name="management_password", field=models.TextField(blank=True),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.AlterField(
            model_name="vpnserver",
            name="management_password",
            field=vpnmonitor.secrets_at_rest.EncryptedTextField(
                blank=True, help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
            ),
        ),
    ]
