"""manage.py createapikey NAME --role viewer|operator|ingest [--tenant USER_ID]"""

from django.core.management.base import BaseCommand, CommandError

from vpnmonitor.models import ApiKey, audit, command_actor


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", choices=[r.value for r in ApiKey.Role], default=ApiKey.Role.VIEWER)
        parser.add_argument("--tenant", type=int, default=None, help="Scope to this proxy-analytics user_id")

    def handle(self, *args, name, role, tenant, **options):
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"An API key named {name!r} already exists.")
        api_key, plaintext = ApiKey.issue(name, role, tenant)
        audit(command_actor("createapikey"), "apikey.create", api_key,
              changes={"name": {"after": name}, "role": {"after": role}, "tenant_user_id": {"after": tenant}})
        self.stderr.write(f"Created {role} key {name!r}" + (f" for tenant {tenant}" if tenant else "")
                          + ". Store it now; it cannot be shown again:")
        self.stdout.write(plaintext)
