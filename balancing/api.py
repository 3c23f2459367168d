"""JSON API of balancing: the site's limits, the energy system's setpoint, each charger's
balancing settings. Rules live in balancing.forms (shared with the pages); writes in
balancing.services (audited).

- `GET /api/site`, `PUT /api/site` (operate)
- `PUT /api/site/setpoint`, `DELETE /api/site/setpoint` (write_setpoint)
- `GET /api/chargers/<charge_box_id>/balancing`, `PUT ...` (operate; creates an unseen charger)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from channels.db import database_sync_to_async
from django.utils import timezone
from ninja import Field, Router
from ninja.errors import HttpError

from accounts.roles import OPERATE, WRITE_SETPOINT
from balancing import selectors, services
from linkray_site.api import REFUSALS, ErrorOut, StrictSchema, api, require, require_view

router = Router(tags=["balancing"])

# A setpoint always expires, so LinkRay returns to the site limit by itself even when the
# energy system that set it goes quiet; an energy system that keeps a limit re-sends it.
DEFAULT_SETPOINT_VALID_FOR_S = 900.0


class SiteIn(StrictSchema):
    grid_limit_a: float | None = Field(default=None, description="per-phase limit at the grid connection (main fuse), A")
    grid_limit_kw: float | None = Field(default=None, description="total import cap, kW (null: none)")
    margin_a: float = Field(default=0, description="kept free below the limit, A")
    failsafe_current_a: float = Field(default=6, description="per charger while the meter is stale, A")
    nominal_voltage_v: float = Field(default=230, description="phase voltage for A<->W, V")
    control_period_s: float = Field(default=1, description="seconds between control cycles")


class SetpointIn(StrictSchema):
    max_import_a: float | None = Field(default=None, ge=0, description="per-phase import limit, A")
    max_import_kw: float | None = Field(default=None, ge=0, description="total import limit, kW")
    valid_for_s: float = Field(
        default=DEFAULT_SETPOINT_VALID_FOR_S,
        gt=0,
        le=7 * 86400,
        description="seconds until LinkRay returns to the site limit by itself (left out: 900, 15 minutes)",
    )


class ChargerBalancingIn(StrictSchema):
    """Fields left out keep their value (a charger registered here starts from these defaults)."""

    enabled: bool = Field(default=True, description="balanced by LinkRay; left out: unchanged for a known charger, true for one this request registers")
    kind: Literal["ac1", "ac3", "dc"] = "ac3"
    phases: list[str] = Field(default_factory=list, description='site phases of the charger\'s L1[, L2, L3], e.g. ["L2"]')
    min_current_a: float = 6
    max_current_a: float | None = 32
    max_power_w: float | None = None
    priority: int = 0
    rate_unit: Literal["A", "W"] | None = None


def _invalid(request, error: services.InvalidSettings):
    return api.create_response(request, {"error": "invalid input", "fields": error.fields}, status=400)


@router.get("/site", response={200: dict[str, Any], **REFUSALS}, summary="Site limits with live values")
async def site_detail(request):
    require_view(request)
    return await database_sync_to_async(selectors.site_status)(timezone.now())


@router.put("/site", response={200: dict[str, Any], **REFUSALS}, summary="Change the site's limits")
async def site_update(request, body: SiteIn):
    principal = require(request, OPERATE)
    try:
        await database_sync_to_async(services.update_site)(principal, body.model_dump(exclude_unset=True))
    except services.InvalidSettings as error:
        return _invalid(request, error)
    return await database_sync_to_async(selectors.site_status)(timezone.now())


@router.put("/site/setpoint", response={200: dict[str, Any], **REFUSALS}, summary="Set the energy system's import limit")
async def setpoint_set(request, body: SetpointIn):
    principal = require(request, WRITE_SETPOINT)
    now: datetime = timezone.now()
    try:
        setpoint = await database_sync_to_async(services.set_setpoint)(
            principal, now, max_import_a=body.max_import_a, max_import_kw=body.max_import_kw, valid_for_s=body.valid_for_s
        )
    except services.InvalidSettings as error:
        return _invalid(request, error)
    return {"setpoint": selectors.setpoint_view(setpoint)}


@router.delete("/site/setpoint", response={200: dict[str, Any], **REFUSALS}, summary="Clear the setpoint")
async def setpoint_clear(request):
    principal = require(request, WRITE_SETPOINT)
    cleared = await database_sync_to_async(services.clear_setpoint)(principal, timezone.now())
    return {"setpoint": None, "cleared": cleared}


@router.get("/chargers/{charge_box_id}/balancing", response={200: dict[str, Any], **REFUSALS, 404: ErrorOut}, summary="A charger's balancing")
async def charger_balancing_detail(request, charge_box_id: str):
    require_view(request)
    view = await database_sync_to_async(selectors.charger_balancing_by_id)(charge_box_id)
    if view is None:
        raise HttpError(404, f"unknown charger {charge_box_id}")
    return view


@router.put(
    "/chargers/{charge_box_id}/balancing",
    response={200: dict[str, Any], **REFUSALS},
    summary="Change a charger's balancing (registers a charger not seen yet)",
)
async def charger_balancing_update(request, charge_box_id: str, body: ChargerBalancingIn):
    principal = require(request, OPERATE)
    if not charge_box_id or len(charge_box_id) > 255:
        raise HttpError(400, "charge_box_id must be 1 to 255 characters")
    try:
        await database_sync_to_async(services.update_charger_balancing)(
            principal, charge_box_id, body.model_dump(exclude_unset=True)
        )
    except services.InvalidSettings as error:
        return _invalid(request, error)
    return await database_sync_to_async(selectors.charger_balancing_by_id)(charge_box_id)
