"""Create the first administrator (a person with a Matrix account) unless one exists."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.matrix.errors import MatrixError


class Command(BaseCommand):
    help = (
        "Create the first admin from WEBCLIENT_ADMIN_USERNAME / WEBCLIENT_ADMIN_PASSWORD, or with a "
        "generated password printed once. Does nothing when a superuser already exists."
    )

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write("An administrator already exists; nothing to do.")
            return
        username = os.environ.get("WEBCLIENT_ADMIN_USERNAME", "admin")
        given = os.environ.get("WEBCLIENT_ADMIN_PASSWORD", "")
        password = given or secrets.token_urlsafe(12)
        try:
            services.account_provision(
                username=username, password=password, is_staff=True, is_superuser=True
            )
        except MatrixError as error:
            raise CommandError(f"Could not create the first admin '{username}': {error}") from None
        self.stdout.write(self.style.SUCCESS(f"Created the first admin: {username}"))
        if not given:
            self.stdout.write(
                f"  user name: {username}\n  password:  {password}\n"
                "  (shown once: write it down, or change it in the admin console)"
            )
