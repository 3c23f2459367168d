"""JSON API of meters: `GET/POST /api/meters`, `PUT/DELETE /api/meters/<id>` (administer to
write). Same fields and rules as the meter page: the input goes through meters.forms.MeterForm.
`model` on the wire is the register map's key (`model_key` in the database)."""

from __future__ import annotations

from typing import Any, Literal

from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone
from ninja import Router, Status
from ninja.errors import HttpError

from accounts.roles import ADMINISTER
from audit.services import changed, record
from linkray_site.api import REFUSALS, ErrorOut, StrictSchema, api, require, require_view
from meters import selectors
from meters.forms import MeterForm
from meters.models import Meter

router = Router(tags=["meters"])


class MeterIn(StrictSchema):
    name: str | None = None
    model: str | None = None
    role: Literal["grid", "pv", "building", "charger_group", "other"] | None = None
    enabled: bool | None = None
    transport: Literal["rtu", "tcp", "rtu_over_tcp"] | None = None
    host: str | None = None
    port: int | None = None
    serial_port: str | None = None
    baudrate: int | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: int | None = None
    unit_id: int | None = None
    poll_interval_s: float | None = None
    stale_after_s: float | None = None
    timeout_s: float | None = None


def meter_dict(meter: Meter) -> dict[str, Any]:
    data = {name: getattr(meter, name) for name in MeterForm.Meta.fields}
    data["model"] = data.pop("model_key")
    return {"id": meter.pk, **data}


def _reading_dict(row) -> dict[str, Any] | None:
    reading = row.reading
    if reading is None:
        return None
    return {
        "measured_at": reading.measured_at,
        "current_a": list(reading.current_a.as_tuple()),
        "voltage_v": list(reading.voltage_v.as_tuple()),
        "power_w": list(reading.power_w.as_tuple()),
        "total_power_w": reading.total_power_w,
        "import_energy_wh": reading.import_energy_wh,
        "frequency_hz": reading.frequency_hz,
    }


def meter_list() -> list[dict[str, Any]]:
    return [
        {**meter_dict(row.meter), "state": row.state, "age_s": row.age_s, "reading": _reading_dict(row)}
        for row in selectors.meter_rows(timezone.now())
    ]


class InvalidMeter(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__("invalid input")
        self.fields = fields


def save_meter(principal, meter: Meter, changes: dict[str, Any]) -> Meter:
    """Create or change a meter through the page's form; audited."""
    creating = meter.pk is None
    before = None if creating else meter_dict(meter)
    data = {name: getattr(meter, name) for name in MeterForm.Meta.fields}
    if "model" in changes:
        changes = {**changes, "model_key": changes.pop("model")}
    data.update({key: value for key, value in changes.items() if value is not None or key in ("host", "serial_port")})
    data = {key: "" if value is None else value for key, value in data.items()}
    form = MeterForm(data, instance=meter)
    if not form.is_valid():
        fields = {}
        for name, messages in form.errors.items():
            key = {"model_key": "model", "__all__": "body"}.get(name, name)
            fields[key] = "; ".join(str(message) for message in messages)
        raise InvalidMeter(fields)
    with transaction.atomic():
        meter = form.save()
        after = meter_dict(meter)
        if creating:
            record(principal, "meter.create", meter.name, after=after)
        else:
            old, new = changed(before, after)
            if new:
                record(principal, "meter.update", meter.name, before=old, after=new)
    return meter


def delete_meter(principal, meter_id: int) -> bool:
    meter = Meter.objects.filter(pk=meter_id).first()
    if meter is None:
        return False
    with transaction.atomic():
        before = meter_dict(meter)
        meter.delete()
        record(principal, "meter.delete", before["name"], before=before)
    return True


def _invalid(request, error: InvalidMeter):
    return api.create_response(request, {"error": "invalid input", "fields": error.fields}, status=400)


@router.get("/meters", response={200: dict[str, list[dict[str, Any]]], **REFUSALS}, summary="Meters with their latest reading")
async def meters_list(request):
    require_view(request)
    return {"meters": await database_sync_to_async(meter_list)()}


@router.post("/meters", response={201: dict[str, Any], **REFUSALS}, summary="Add a meter")
async def meter_create(request, body: MeterIn):
    principal = require(request, ADMINISTER)
    try:
        meter = await database_sync_to_async(save_meter)(principal, Meter(), body.model_dump(exclude_unset=True))
    except InvalidMeter as error:
        return _invalid(request, error)
    return Status(201, meter_dict(meter))


@router.put("/meters/{meter_id}", response={200: dict[str, Any], **REFUSALS, 404: ErrorOut}, summary="Change a meter")
async def meter_update(request, meter_id: int, body: MeterIn):
    principal = require(request, ADMINISTER)
    meter = await Meter.objects.filter(pk=meter_id).afirst()
    if meter is None:
        raise HttpError(404, f"unknown meter {meter_id}")
    try:
        meter = await database_sync_to_async(save_meter)(principal, meter, body.model_dump(exclude_unset=True))
    except InvalidMeter as error:
        return _invalid(request, error)
    return meter_dict(meter)


@router.delete("/meters/{meter_id}", response={204: None, **REFUSALS, 404: ErrorOut}, summary="Delete a meter")
async def meter_remove(request, meter_id: int):
    principal = require(request, ADMINISTER)
    if not await database_sync_to_async(delete_meter)(principal, meter_id):
        raise HttpError(404, f"unknown meter {meter_id}")
    return Status(204, None)
