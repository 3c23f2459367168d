"""JSON API of the gateway: chargers' live model and LinkRay CALLs to a charger.

Paths, payloads and status codes predate the framework and scripts rely on them:
`GET /api/chargers`, `GET /api/chargers/<id>`, `POST /api/chargers/<id>/calls`.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.urls import register_converter
from ninja import Field, Router
from ninja.errors import HttpError
from pydantic import field_validator

from accounts.roles import OPERATE
from audit.services import arecord
from gateway import commands, selectors
from gateway.urls import ChargeBoxIdConverter
from linkray_site.api import REFUSALS, ErrorOut, StrictSchema, require, require_view

router = Router(tags=["chargers"])


class ApiChargeBoxIdConverter(ChargeBoxIdConverter):
    """A charge box id in an API path. Scripts escape a `/` in an id once (`/api/chargers/a%2Fb`),
    which the server decodes to `a/b` before routing, so a slash is accepted here, except before
    another operation's trailing `/calls`, `/balancing`, ... The pages' double escaping
    (`a%252Fb`) works too."""

    regex = r"(?:[^/]|/(?!(?:calls|balancing|actions|profiles|transactions|queue)$))+"

    def to_python(self, value: str) -> str:
        # No NUL check here: the API answers a value the database refuses with 400.
        return self._escaped.sub(lambda match: "%" if match.group(1) == "25" else "/", value)


register_converter(ApiChargeBoxIdConverter, "api_charge_box_id")


class CallIn(StrictSchema):
    action: str = Field(description="OCPP 1.6 action name, e.g. GetConfiguration")
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=300, description="seconds in (0, 300]")

    @field_validator("action")
    @classmethod
    def _action_is_a_name(cls, value: str) -> str:
        if not value.isidentifier() or len(value) > 64:
            raise ValueError("must be an OCPP action name")
        return value


class CallOut(StrictSchema):
    payload: dict[str, Any]


class CallErrorOut(StrictSchema):
    error: str
    errorCode: str
    errorDescription: str


@router.get("/chargers", response={200: dict[str, list[dict[str, Any]]], **REFUSALS}, summary="List chargers")
async def charger_list(request):
    require_view(request)
    return {"chargers": await database_sync_to_async(selectors.charger_summaries)()}


@router.post(
    "/chargers/{api_charge_box_id:charge_box_id}/calls",
    response={200: CallOut, **REFUSALS, 404: ErrorOut, 502: CallErrorOut, 504: ErrorOut},
    summary="Send an OCPP CALL to the charger",
)
async def charger_call(request, charge_box_id: str, body: CallIn):
    principal = require(request, OPERATE)
    try:
        result = await commands.send_call(charge_box_id, body.action, body.payload, timeout_s=body.timeout_s)
    except commands.ChargerNotConnected as error:
        await arecord(principal, f"charger.call.{body.action}", charge_box_id, after=body.payload, outcome="not connected")
        raise HttpError(404, f"charger not connected: {error}") from None
    except commands.CallTimedOut as error:
        await arecord(principal, f"charger.call.{body.action}", charge_box_id, after=body.payload, outcome="timed out")
        raise HttpError(504, f"charger did not answer: {error}") from None
    except commands.CallErrorReceived as error:
        await arecord(principal, f"charger.call.{body.action}", charge_box_id, after=body.payload, outcome=f"CALLERROR {error.error_code}")
        return 502, {"error": "charger answered with CALLERROR", "errorCode": error.error_code, "errorDescription": error.description}
    await arecord(principal, f"charger.call.{body.action}", charge_box_id, after=body.payload, outcome="answered")
    return {"payload": result}


@router.get("/chargers/{api_charge_box_id:charge_box_id}", response={200: dict[str, Any], **REFUSALS, 404: ErrorOut}, summary="One charger's live model")
async def charger_detail(request, charge_box_id: str):
    require_view(request)
    detail = await database_sync_to_async(selectors.charger_detail)(charge_box_id)
    if detail is None:
        raise HttpError(404, f"unknown charger {charge_box_id}")
    return detail
