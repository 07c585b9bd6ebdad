"""manage.py add_vpn_server NAME (--management HOST:PORT | --management-socket PATH | --status-file PATH) ..."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from monitoring import services
from monitoring.models import VpnServer, validate_time_zone
from monitoring.sources.management import ManagementError, parse_management_address
from vpnmonitor.models import audit, command_actor


class Command(BaseCommand):
    help = "Register an OpenVPN server to monitor."

    def add_arguments(self, parser):
        parser.add_argument("name")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--management", help="management interface host:port")
        source.add_argument("--management-socket", help="management interface unix socket path")
        source.add_argument("--status-file", help="status file path")
        parser.add_argument("--password-file", help="file holding the management password")
        parser.add_argument("--pki-dir", default="", help="easy-rsa pki/ directory")
        parser.add_argument("--log-file", default="", help="server log file")
        parser.add_argument("--time-zone", default="",
                            help="IANA zone of the server's clock for times without a time_t (default: TIME_ZONE)")
        parser.add_argument("--region", default="")
        parser.add_argument("--network", default="")

    def handle(self, *args, **options):
        name = options["name"]
        if VpnServer.objects.filter(name=name).exists():
            raise CommandError(f"A VPN server named {name!r} exists already.")
        if options["management"]:
            try:
                address = parse_management_address(options["management"])
            except ManagementError as exc:
                raise CommandError(str(exc)) from None
            if isinstance(address, str):
                raise CommandError("--management takes host:port; use --management-socket for a socket path")
        if options["time_zone"]:
            try:
                validate_time_zone(options["time_zone"])
            except ValidationError as exc:
                raise CommandError(exc.messages[0]) from None
        password = ""
        if options["password_file"]:
            try:
                password = Path(options["password_file"]).read_text().splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise CommandError(f"cannot read the password file: {exc}") from None
        server = VpnServer.objects.create(
            name=name, management_address=options["management"] or "",
            management_socket=options["management_socket"] or "", status_file=options["status_file"] or "",
            management_password=password, pki_dir=options["pki_dir"], log_file=options["log_file"],
            region=options["region"], network_name=options["network"], time_zone=options["time_zone"],
        )
        audit(command_actor("add_vpn_server"), "vpnserver.create", server, changes={
            **{field: {"after": getattr(server, field)} for field in (
                "name", "management_address", "management_socket", "status_file", "pki_dir", "log_file", "region",
                "network_name", "time_zone")},
            "management_password": {"changed": bool(password)},
        })
        self.stdout.write(f"Added VPN server {server.name} reading {server.source_description}.")
        if server.pki_dir:
            found = services.scan_new_pki_dir(server)
            self.stdout.write(f"Certificates found in the PKI directory: {found}.")
