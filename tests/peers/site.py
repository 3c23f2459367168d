"""A closed-loop site for balancing tests: a grid meter (pymodbus SDM630 server) reading a base
load plus what simulated chargers draw, and chargers (the `ocpp` package) that obey the charging
profiles they hold (minimum of ChargePointMax and TxProfile/TxDefault, OCPP 1.6 §3.13.3) after a
reaction delay, and report their currents with MeterValues."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from linkray_site.electrical import Phases
from meters.simulator import SimulatedMeter, SimulatedSite
from tests.peers.charger import ChargerPeer, ConnectedCharger
from tests.peers.meter import MeterPeer, meter_map

VOLTAGE_V = 230.0


class ObedientChargerPeer(ChargerPeer):
    """A charger whose car draws the most the installed profiles allow (up to the car's maximum)."""

    kind: str = "ac3"
    car_max_a: float = 32.0
    reaction_delay_s: float = 0.3
    charging: bool = False
    offered_a: float = 0.0

    def limit_a(self) -> float:
        limit = self.car_max_a
        phases = 1 if self.kind == "ac1" else 3
        by_purpose: dict[str, tuple[int, float]] = {}
        for profile in self.profiles:
            schedule = profile.get("charging_schedule") or {}
            periods = schedule.get("charging_schedule_period") or []
            if not periods:
                continue
            value = float(periods[0]["limit"])
            if schedule.get("charging_rate_unit") == "W":
                value = value / (phases * VOLTAGE_V)
            purpose = profile.get("charging_profile_purpose")
            level = profile.get("stack_level", 0)
            if purpose not in by_purpose or level > by_purpose[purpose][0]:
                by_purpose[purpose] = (level, value)
        for purpose in ("ChargePointMaxProfile", "TxProfile" if "TxProfile" in by_purpose else "TxDefaultProfile"):
            if purpose in by_purpose:
                limit = min(limit, by_purpose[purpose][1])
        return limit

    def draw_a(self) -> float:
        return self.offered_a if self.charging else 0.0

    async def _react(self) -> None:
        await asyncio.sleep(self.reaction_delay_s)
        self.offered_a = self.limit_a()

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles):
        await self._gate()
        self.requests.append(("SetChargingProfile", {"connector_id": connector_id, "profile": cs_charging_profiles}))
        # Same (stack level, purpose) or same id replaces (§5.16.3).
        self.profiles = [
            p
            for p in self.profiles
            if p.get("charging_profile_id") != cs_charging_profiles.get("charging_profile_id")
            and not (
                p.get("stack_level") == cs_charging_profiles.get("stack_level")
                and p.get("charging_profile_purpose") == cs_charging_profiles.get("charging_profile_purpose")
                and p.get("connector_id") == connector_id
            )
        ]
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        asyncio.ensure_future(self._react())
        return call_result.SetChargingProfile(status="Accepted")


class SimCharger:
    """One charger of the site: connects, charges one car, reports its draw every 0.3 s."""

    def __init__(self, url: str, charge_box_id: str, *, kind: str = "ac3", wiring: tuple[int, ...] = (0, 1, 2), car_max_a: float = 32.0):
        self.connected = ConnectedCharger(url, charge_box_id, peer_class=ObedientChargerPeer)
        self.charge_box_id = charge_box_id
        self.kind = kind
        self.wiring = wiring
        self.car_max_a = car_max_a
        self.transaction_id: int | None = None
        self._reporter: asyncio.Task | None = None

    @property
    def peer(self) -> ObedientChargerPeer:
        return self.connected.peer

    async def connect(self) -> SimCharger:
        await self.connected.connect()
        self.peer.kind = self.kind
        self.peer.car_max_a = self.car_max_a
        self.peer.offered_a = self.car_max_a  # no profile yet: unlimited
        await self.connected.call(call.BootNotification(charge_point_vendor="Sim", charge_point_model=self.kind))
        return self

    async def start_charging(self) -> None:
        await self.connected.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        answer = await self.connected.call(
            call.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(UTC).isoformat())
        )
        self.transaction_id = answer.transaction_id
        self.peer.charging = True
        await self.connected.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        self._reporter = asyncio.ensure_future(self._report_forever())

    def site_draw_a(self) -> tuple[float, float, float]:
        draw = self.peer.draw_a()
        site = [0.0, 0.0, 0.0]
        for phase in self.wiring:
            site[phase] += draw
        return (site[0], site[1], site[2])

    async def _report_forever(self) -> None:
        while True:
            draw = self.peer.draw_a()
            if self.kind == "dc":
                samples = [{"measurand": "Power.Active.Import", "unit": "W", "value": f"{draw * 3 * VOLTAGE_V:.0f}"}]
            else:
                samples = [
                    {"measurand": "Current.Import", "unit": "A", "phase": f"L{index + 1}", "value": f"{draw:.1f}"}
                    for index in range(len(self.wiring))
                ]
            try:
                await self.connected.call(
                    call.MeterValues(
                        connector_id=1,
                        transaction_id=self.transaction_id,
                        meter_value=[{"timestamp": datetime.now(UTC).isoformat(), "sampled_value": samples}],
                    )
                )
            except Exception:
                return
            await asyncio.sleep(0.3)

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        await self.connected.close()


class Site:
    """The grid meter and the chargers: the meter reads base load + every charger's draw."""

    def __init__(self, base_current_a: tuple[float, float, float]):
        self.grid = SimulatedSite(base_current_a=Phases(*base_current_a), charging_current_a=Phases(0.0, 0.0, 0.0))
        self.chargers: list[SimCharger] = []
        self.meter = MeterPeer([SimulatedMeter(meter_map("sdm630"), self._values)])

    def _values(self):
        totals = [0.0, 0.0, 0.0]
        for charger in self.chargers:
            for index, value in enumerate(charger.site_draw_a()):
                totals[index] += value
        self.grid.charging_current_a = Phases(*totals)
        return self.grid.values()

    def set_base(self, l1: float, l2: float, l3: float) -> None:
        self.grid.base_current_a = Phases(l1, l2, l3)

    def grid_current_a(self) -> tuple[float, float, float]:
        values = self._values()
        return (values["current_a.l1"], values["current_a.l2"], values["current_a.l3"])

    def charging_current_a(self) -> tuple[float, float, float]:
        self._values()
        return self.grid.charging_current_a.as_tuple()

    async def add_charger(self, url: str, charge_box_id: str, **kwargs) -> SimCharger:
        charger = await SimCharger(url, charge_box_id, **kwargs).connect()
        self.chargers.append(charger)
        return charger

    async def close(self) -> None:
        for charger in self.chargers:
            await charger.close()
        await self.meter.stop()
