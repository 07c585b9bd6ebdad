"""manage.py createsuperuser: Django's own command, with each user it creates recorded in the audit log."""

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser

from vpnmonitor.models import audit, command_actor


class Command(createsuperuser.Command):
    def handle(self, *args, **options):
        users = get_user_model().objects
        last = users.order_by("-pk").values_list("pk", flat=True).first() or 0
        super().handle(*args, **options)
        for user in users.filter(pk__gt=last).order_by("pk"):
            audit(command_actor("createsuperuser"), "user.create", user,
                  changes={"username": {"after": user.get_username()}, "is_superuser": {"after": user.is_superuser},
                           "password": {"changed": user.has_usable_password()}})
