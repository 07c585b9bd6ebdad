"""manage.py ensure_admin: create the first superuser for local use and print its password."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from vpnmonitor.models import audit, command_actor


class Command(BaseCommand):
    help = "Create a superuser (default name 'admin') with a random password unless one exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        user_model = get_user_model()
        password_file = settings.VAR_DIR / "admin-password.txt"
        if user_model.objects.filter(username=username).exists():
            hint = f" (password in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"Admin user '{username}' exists{hint}.")
            return
        password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(username=username, email="", password=password)
        audit(command_actor("ensure_admin"), "user.create", user,
              changes={"username": {"after": username}, "is_superuser": {"after": True}, "password": {"changed": True}})
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(
            f"Created admin user '{username}' with password: {password}  (also saved to {password_file})"
        ))
