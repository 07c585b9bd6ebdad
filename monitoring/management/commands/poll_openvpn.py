"""manage.py poll_openvpn [--server NAME]: read every enabled server once."""

from django.core.management.base import BaseCommand, CommandError

from monitoring import services
from monitoring.models import VpnServer


class Command(BaseCommand):
    help = "Poll enabled OpenVPN servers once (the same service the beat task runs)."

    def add_arguments(self, parser):
        parser.add_argument("--server", help="only this server (by name)")

    def handle(self, *args, server=None, **options):
        servers = VpnServer.objects.filter(enabled=True)
        if server:
            servers = VpnServer.objects.filter(name=server)
            if not servers.exists():
                raise CommandError(f"No VPN server named {server!r}.")
        failed = 0
        for each in servers:
            result = services.poll_server(each)
            if not result.ok:
                failed += 1
                self.stderr.write(f"{each.name}: {result.error}")
            elif result.skipped:
                self.stdout.write(f"{each.name}: skipped ({result.skipped})")
            else:
                self.stdout.write(
                    f"{each.name}: {result.connections} connections ({result.opened} new, {result.closed} closed), "
                    f"+{result.bytes_received} B received, +{result.bytes_sent} B sent"
                )
        if failed:
            raise CommandError(f"{failed} server(s) failed")
