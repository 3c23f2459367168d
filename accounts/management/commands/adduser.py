"""`manage.py adduser USERNAME --role viewer|operator|administrator [--password-stdin]`.

Without --password-stdin a password is generated and printed once. The password passes
Django's validators; the addition is audited with the actor "manage.py"."""

from __future__ import annotations

import secrets
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.roles import ROLES


class Command(BaseCommand):
    help = "Add a user with a role (viewer, operator or administrator)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=list(ROLES))
        parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")

    def handle(self, *args, username: str, role: str, password_stdin: bool, **options):
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("no password on stdin")
        else:
            password = secrets.token_urlsafe(15)
        try:
            services.create_user(services.COMMAND_LINE, username, role, password)
        except services.AccountError as error:
            raise CommandError(f"{error.field}: {error.message}") from None
        self.stdout.write(f"Added user {username!r} with role {role}.\n")
        if not password_stdin:
            self.stdout.write(f"Password (shown once): {password}\n")
