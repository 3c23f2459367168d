"""`manage.py adduser USERNAME --role viewer|operator|administrator [--password-stdin]`.

Without --password-stdin a password is generated and printed once. The password passes
Django's validators; the addition is audited with the actor "manage.py"."""

from __future__ import annotations

import secrets
import sys
from argparse import RawDescriptionHelpFormatter

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

from accounts import services
from accounts.roles import ROLES


ROLE_HELP = """\
roles (Django groups; the page, the admin and the API enforce the same rights):
  viewer         reads everything: pages, API, audit log
  operator       also per-charger balancing, site limits, setpoints, actions on chargers
  administrator  also users, API tokens, the CSMS URL, meters, security settings

The password must pass the password rules (at least 8 characters, not common, not like
the user name, not all digits). The new user and who added them go to the audit log.

examples:
  manage.py adduser olga --role operator
      generates a password and prints it once
  printf '%s\\n' "$PASSWORD" | manage.py adduser ems-installer --role viewer --password-stdin
      takes the password from the first line of stdin (nothing is printed)"""


class _HelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Django's order of options, with the epilog's lines and indents kept."""


class Command(BaseCommand):
    help = "Add a person who logs in to the page, the admin and the API, with one role."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", ROLE_HELP)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("username", help="the login name (1 to 150 characters: letters, digits and @.+-_)")
        parser.add_argument(
            "--role", required=True, choices=list(ROLES), help="what the person may do (see roles below)"
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of generating one",
        )

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
