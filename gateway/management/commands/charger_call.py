"""`manage.py charger_call CP1 GetConfiguration '{"key": ["HeartbeatInterval"]}'`

Sends one of LinkRay's own CALLs to a connected charger and prints the answer as JSON. With
REDIS_URL set it goes through the channel layer to whichever process holds the charger; on
the embedded default it asks the running server's API (`--server`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway import commands


class Command(BaseCommand):
    help = "Send a LinkRay CALL to a connected charger and print the CALLRESULT payload."

    def add_arguments(self, parser):
        parser.add_argument("charge_box_id")
        parser.add_argument("action", help="OCPP action, e.g. GetConfiguration")
        parser.add_argument("payload", nargs="?", default="{}", help="JSON object (default {})")
        parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the answer")
        parser.add_argument(
            "--server", default="http://127.0.0.1:8000", help="the running LinkRay (embedded default only)"
        )

    def handle(self, *args, charge_box_id, action, payload, timeout, server, **options):
        try:
            body = json.loads(payload)
        except ValueError as error:
            raise CommandError(f"payload is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise CommandError("payload must be a JSON object")
        if settings.LINKRAY_EMBEDDED:
            result = self._through_api(server, charge_box_id, action, body, timeout)
        else:
            try:
                result = commands.send_call_sync(charge_box_id, action, body, timeout_s=timeout)
            except commands.CommandError as error:
                raise CommandError(f"{type(error).__name__}: {error}") from None
        self.stdout.write(json.dumps(result, indent=2, sort_keys=True))

    def _through_api(self, server, charge_box_id, action, body, timeout):
        url = f"{server.rstrip('/')}/api/chargers/{urllib.request.quote(charge_box_id, safe='')}/calls"
        request = urllib.request.Request(
            url,
            data=json.dumps({"action": action, "payload": body, "timeout_s": timeout}).encode(),
            headers={"Authorization": f"Bearer {settings.LINKRAY_API_TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=(timeout or settings.LINKRAY_CALL_TIMEOUT_S) * 2 + 5) as response:
                return json.loads(response.read())["payload"]
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except ValueError:
                message = ""
            raise CommandError(f"HTTP {error.code}: {message}") from None
        except urllib.error.URLError as error:
            raise CommandError(f"cannot reach LinkRay at {server}: {error.reason}") from None
