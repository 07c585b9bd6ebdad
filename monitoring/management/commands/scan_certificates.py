"""manage.py scan_certificates: read certificate expiry and revocation from each server's PKI."""

from django.core.management.base import BaseCommand

from monitoring.tasks import scan_certificates


class Command(BaseCommand):
    help = "Scan pki/issued/*.crt and pki/index.txt of every enabled server with a PKI directory."

    def handle(self, *args, **options):
        for server, count in scan_certificates().items():
            self.stdout.write(f"{server}: {'failed' if count is None else f'{count} certificates'}")
