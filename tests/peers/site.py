"""A small site for page tests and screenshots: a few chargers (the `ocpp` package) booted
through LinkRay to a CSMS, one charging with meter values, one offline, a finished session,
a meter that cannot be reached, and users in the viewer and operator groups."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from ocpp.v16 import call

from tests.peers.charger import ConnectedCharger

CHARGERS = ("WB-GARAGE-01", "WB-GARAGE-02", "DC-FAST-LOBBY-SOUTH-0003")
OFFLINE_CHARGER = "WB-CARPORT-OLD-07"
PASSWORDS = {"viewer": "viewer-password-e2e-1", "operator": "operator-password-e2e-2"}

CREATE_USERS = (
    "from django.contrib.auth.models import Group, User\n"
    + "".join(
        f"u = User.objects.create_user({name!r}, password={password!r}); u.groups.add(Group.objects.get(name={name!r}))\n"
        for name, password in PASSWORDS.items()
    )
)
# A meter whose host answers nothing (a closed loopback port): its error shows in the list.
CREATE_METER = (
    "from meters.models import Meter\n"
    "Meter.objects.create(name='Grid connection (main switchboard, basement plant room)', model_key='sdm630',"
    " transport='tcp', host='127.0.0.1', port=9, timeout_s=0.2)\n"
)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def boot_site(linkray_url: str, stack: AsyncExitStack) -> dict[str, ConnectedCharger]:
    """Connect and boot the chargers; the first one charges (transaction + meter values)."""
    chargers = {}
    for index, charge_box_id in enumerate((OFFLINE_CHARGER, *CHARGERS)):
        charger = await stack.enter_async_context(ConnectedCharger(linkray_url, charge_box_id))
        await charger.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model=f"Wallbox {11 * (index + 1)}"))
        for connector_id in (1, 2) if charge_box_id != CHARGERS[2] else (1,):
            await charger.call(call.StatusNotification(connector_id=connector_id, error_code="NoError", status="Available"))
        chargers[charge_box_id] = charger
    busy = chargers[CHARGERS[0]]
    # A finished session, then a running one.
    done = await busy.call(call.StartTransaction(connector_id=2, id_tag="FLEET-0042", meter_start=1_000, timestamp=_at(-95)))
    await busy.call(call.StopTransaction(meter_stop=9_400, timestamp=_at(-20), transaction_id=done.transaction_id, reason="EVDisconnected"))
    await busy.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    await busy.call(call.StartTransaction(connector_id=1, id_tag="04A1B2C3D4", meter_start=120_000, timestamp=_at(-42)))
    await busy.call(
        call.MeterValues(
            connector_id=1,
            meter_value=[
                {
                    "timestamp": _now(),
                    "sampled_value": [
                        {"value": "124350", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": "7360", "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": "10.6", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                        {"value": "10.7", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                        {"value": "10.5", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                    ],
                }
            ],
        )
    )
    await chargers[OFFLINE_CHARGER].close()
    return chargers


def _at(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
