"""JSON API of the gateway: chargers' live model and LinkRay CALLs to a charger.

Authenticated by `Authorization: Bearer <LINKRAY_API_TOKEN>` or a logged-in staff session.
Errors are `{"error": "..."}` with a 4xx/5xx status.
"""

from __future__ import annotations

import hmac
import json
from functools import wraps

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from gateway import commands, selectors


def api_auth(view):
    @wraps(view)
    async def wrapper(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if hmac.compare_digest(header[7:].strip().encode(), settings.LINKRAY_API_TOKEN.encode()):
                return await view(request, *args, **kwargs)
            return JsonResponse({"error": "invalid API token"}, status=401)
        user = await request.auser()
        if user.is_authenticated and user.is_staff:
            return await view(request, *args, **kwargs)
        return JsonResponse({"error": "authentication required"}, status=401)

    return wrapper


@require_GET
@api_auth
async def charger_list(request):
    return JsonResponse({"chargers": await database_sync_to_async(selectors.charger_summaries)()})


@require_GET
@api_auth
async def charger_detail(request, charge_box_id: str):
    detail = await database_sync_to_async(selectors.charger_detail)(charge_box_id)
    if detail is None:
        return JsonResponse({"error": f"unknown charger {charge_box_id}"}, status=404)
    return JsonResponse(detail)


@csrf_exempt
@require_POST
@api_auth
async def charger_call(request, charge_box_id: str):
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "body is not valid JSON"}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": "body must be a JSON object"}, status=400)
    action, payload, timeout_s = body.get("action"), body.get("payload", {}), body.get("timeout_s")
    if not isinstance(action, str) or not action.isidentifier():
        return JsonResponse({"error": "'action' must be an OCPP action name"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "'payload' must be a JSON object"}, status=400)
    if timeout_s is not None and (not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 300):
        return JsonResponse({"error": "'timeout_s' must be a number of seconds in (0, 300]"}, status=400)
    try:
        result = await commands.send_call(charge_box_id, action, payload, timeout_s=timeout_s)
    except commands.ChargerNotConnected as error:
        return JsonResponse({"error": f"charger not connected: {error}"}, status=404)
    except commands.CallTimedOut as error:
        return JsonResponse({"error": f"charger did not answer: {error}"}, status=504)
    except commands.CallErrorReceived as error:
        return JsonResponse(
            {"error": "charger answered with CALLERROR", "errorCode": error.error_code, "errorDescription": error.description},
            status=502,
        )
    return JsonResponse({"payload": result})
