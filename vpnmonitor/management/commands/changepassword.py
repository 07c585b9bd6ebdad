"""manage.py changepassword: Django's own command, with the change recorded in the audit log (never the password)."""

import getpass

from django.contrib.auth.management.commands import changepassword

from vpnmonitor.models import audit, command_actor


class Command(changepassword.Command):
    def handle(self, *args, **options):
        super().handle(*args, **options)  # raises CommandError when nothing was changed
        username = options["username"] or getpass.getuser()
        audit(command_actor("changepassword"), "user.update", username, changes={"password": {"changed": True}})
