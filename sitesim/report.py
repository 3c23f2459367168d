"""The demo's closing report: grid against the limit, energy per charger, cars left unsatisfied,
and billing (every transaction the chargers started reached the CSMS exactly once).

Pure: stdlib only; it reads what the simulator recorded (grid samples, raw OCPP frames).
Grid times are wall-clock seconds (LinkRay reacts in real time); energies are scenario energies.

    report = build_report(name="office day", speed=600, limit_a=40, reaction_bound_s=3.5,
                          samples=site.recorder.samples, cars=[...], billing=billing_check(sent, received))
    print(report.format()); report.to_dict()
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

SITE_PHASES = ("L1", "L2", "L3")
SATISFIED_FRACTION = 0.98  # a car that got 98 % of what it wanted left satisfied (taper rounding)
BILLING_ACTIONS = ("StartTransaction", "StopTransaction")

Sample = tuple[float, Mapping[str, float]]  # (time.monotonic() s, {phase: A})


@dataclass(frozen=True)
class PhaseReport:
    phase: str
    peak_a: float
    above_s: float  # in total, wall seconds
    longest_above_s: float  # the longest single excursion, wall seconds


@dataclass(frozen=True)
class CarOutcome:
    charge_box_id: str
    arrive_s: float  # scenario time
    leave_s: float | None  # scenario time it left; None: still plugged in at the end
    energy_wanted_wh: float
    energy_delivered_wh: float
    departed: bool

    @property
    def satisfied(self) -> bool:
        return self.energy_delivered_wh >= SATISFIED_FRACTION * self.energy_wanted_wh


@dataclass(frozen=True)
class ChargerBilling:
    charge_box_id: str
    starts_sent: int
    starts_received: int
    stops_sent: int
    stops_received: int
    missing: tuple[str, ...] = ()  # "StartTransaction meterStart=... timestamp=..." never received
    duplicated: tuple[str, ...] = ()  # received more than once
    unexpected: tuple[str, ...] = ()  # received but never sent by the charger

    @property
    def billed_exactly_once(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected)


@dataclass(frozen=True)
class Billing:
    chargers: tuple[ChargerBilling, ...]
    calls_sent: Mapping[str, int] = field(default_factory=dict)  # action -> CALLs the chargers sent
    calls_received: Mapping[str, int] = field(default_factory=dict)  # action -> CALLs the CSMS received

    @property
    def billed_exactly_once(self) -> bool:
        return all(charger.billed_exactly_once for charger in self.chargers)

    @property
    def transactions_started(self) -> int:
        return sum(charger.starts_sent for charger in self.chargers)


@dataclass(frozen=True)
class Report:
    scenario: str
    speed: float
    scenario_s: float
    wall_s: float
    limit_a: float
    reaction_bound_s: float
    phases: tuple[PhaseReport, ...]
    energy_delivered_wh: Mapping[str, float]
    cars: tuple[CarOutcome, ...]
    billing: Billing
    balancing: str = "on"  # "on", or why LinkRay could not be told to balance
    interrupted: bool = False

    @property
    def longest_above_s(self) -> float:
        return max((phase.longest_above_s for phase in self.phases), default=0.0)

    @property
    def within_reaction_bound(self) -> bool:
        """Never above the limit for longer than LinkRay's reaction bound at a stretch."""
        return self.longest_above_s <= self.reaction_bound_s

    @property
    def unsatisfied_cars(self) -> tuple[CarOutcome, ...]:
        return tuple(car for car in self.cars if car.departed and not car.satisfied)

    @property
    def cars_without_energy(self) -> tuple[CarOutcome, ...]:
        return tuple(car for car in self.cars if car.energy_delivered_wh <= 0)

    @property
    def ok(self) -> bool:
        return self.within_reaction_bound and self.billing.billed_exactly_once and not self.cars_without_energy

    def to_dict(self) -> dict:
        data = asdict(self)
        data["billing"]["billed_exactly_once"] = self.billing.billed_exactly_once
        data.update(
            longest_above_s=self.longest_above_s,
            within_reaction_bound=self.within_reaction_bound,
            unsatisfied_cars=[asdict(car) for car in self.unsatisfied_cars],
            cars_without_energy=[asdict(car) for car in self.cars_without_energy],
            ok=self.ok,
        )
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def format(self) -> str:
        lines = [
            f"LinkRay demo report: {self.scenario}"
            + (" (stopped early)" if self.interrupted else "")
            + f" - {_duration(self.scenario_s)} of scenario in {self.wall_s:.0f} s (speed {self.speed:g})",
        ]
        if self.balancing != "on":
            lines.append(f"  balancing: {self.balancing}")
        lines.append(f"Grid current per phase against the {self.limit_a:g} A limit (reaction bound {self.reaction_bound_s:.1f} s):")
        for phase in self.phases:
            lines.append(
                f"  {phase.phase}  peak {phase.peak_a:6.1f} A   above the limit {phase.above_s:5.1f} s"
                f" (longest {phase.longest_above_s:.1f} s)"
            )
        lines.append(
            "  OK: never above the limit longer than the reaction bound"
            if self.within_reaction_bound
            else f"  NOT OK: above the limit for {self.longest_above_s:.1f} s at a stretch"
        )
        lines.append("Energy delivered per charger:")
        for charge_box_id, energy_wh in self.energy_delivered_wh.items():
            cars = sum(1 for car in self.cars if car.charge_box_id == charge_box_id)
            lines.append(f"  {charge_box_id:<16} {energy_wh / 1000:7.1f} kWh  ({cars} car{'s' if cars != 1 else ''})")
        unsatisfied = self.unsatisfied_cars
        if unsatisfied:
            lines.append("Cars that left unsatisfied:")
            lines.extend(f"  {_car(car)}" for car in unsatisfied)
        else:
            lines.append("Cars that left unsatisfied: none")
        still = [car for car in self.cars if not car.departed]
        if still:
            lines.append("Still plugged in when the demo ended (unplugged then):")
            lines.extend(f"  {_car(car)}" for car in still)
        billing = self.billing
        lines.append(
            f"Billing: the chargers started {billing.transactions_started} transaction(s); the CSMS received"
            f" {sum(c.starts_received for c in billing.chargers)} StartTransaction and"
            f" {sum(c.stops_received for c in billing.chargers)} StopTransaction"
            f" (the chargers sent {sum(c.stops_sent for c in billing.chargers)})"
        )
        if billing.billed_exactly_once:
            lines.append("  OK: every transaction billed exactly once")
        for charger in billing.chargers:
            for problem, items in (("missing", charger.missing), ("duplicated", charger.duplicated), ("unexpected", charger.unexpected)):
                lines.extend(f"  NOT OK {charger.charge_box_id}: {problem} {item}" for item in items)
        sent, received = sum(billing.calls_sent.values()), sum(billing.calls_received.values())
        lines.append(f"Messages: the chargers sent {sent} CALLs, the CSMS received {received}")
        for action in sorted(set(billing.calls_sent) | set(billing.calls_received)):
            lines.append(f"  {action:<22} {billing.calls_sent.get(action, 0):6d} sent  {billing.calls_received.get(action, 0):6d} received")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _car(car: CarOutcome) -> str:
    return (
        f"{car.charge_box_id:<16} got {car.energy_delivered_wh / 1000:.1f} of {car.energy_wanted_wh / 1000:.1f} kWh"
        f" (arrived at +{_duration(car.arrive_s)})"
    )


# --- the grid ----------------------------------------------------------------------------------


def phase_reports(samples: Sequence[Sample], limit_a: float) -> tuple[PhaseReport, ...]:
    """Per phase: peak, seconds above `limit_a` in all, and the longest stretch above it. Each
    sample's value holds until the next sample; the last sample counts for nothing."""
    reports = []
    for phase in SITE_PHASES:
        peak_a = max((abs(values.get(phase, 0.0)) for _, values in samples), default=0.0)
        above_s = longest_s = run_s = 0.0
        for (at_s, values), (next_at_s, _) in zip(samples, samples[1:]):
            if abs(values.get(phase, 0.0)) > limit_a:
                step_s = max(0.0, next_at_s - at_s)
                above_s += step_s
                run_s += step_s
                longest_s = max(longest_s, run_s)
            else:
                run_s = 0.0
        reports.append(PhaseReport(phase, round(peak_a, 2), round(above_s, 3), round(longest_s, 3)))
    return tuple(reports)


# --- billing -----------------------------------------------------------------------------------


def _calls(frames: Iterable[str]) -> list[tuple[str, dict]]:
    """(action, payload) of every parsable CALL among raw OCPP-J frames; others are skipped."""
    calls = []
    for raw in frames:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(message, list) and len(message) == 4 and message[0] == 2 and isinstance(message[2], str):
            calls.append((message[2], message[3] if isinstance(message[3], dict) else {}))
    return calls


def _billing_key(action: str, payload: Mapping) -> str:
    """What identifies a billing message across LinkRay (which may rewrite transactionId after an
    outage): the charger's own meter reading and timestamp."""
    if action == "StartTransaction":
        return f"StartTransaction meterStart={payload.get('meterStart')} timestamp={payload.get('timestamp')}"
    return f"StopTransaction meterStop={payload.get('meterStop')} timestamp={payload.get('timestamp')}"


def billing_check(sent: Mapping[str, Iterable[str]], received: Mapping[str, Iterable[str]]) -> Billing:
    """`sent`: per charge_box_id, the raw frames the charger sent; `received`: per charge_box_id,
    the raw frames the CSMS received. Every Start/StopTransaction sent must arrive exactly once."""
    chargers = []
    calls_sent: Counter[str] = Counter()
    calls_received: Counter[str] = Counter()
    for charge_box_id in sorted(set(sent) | set(received)):
        sent_calls = _calls(sent.get(charge_box_id, ()))
        received_calls = _calls(received.get(charge_box_id, ()))
        calls_sent.update(action for action, _ in sent_calls)
        calls_received.update(action for action, _ in received_calls)
        sent_keys = Counter(_billing_key(a, p) for a, p in sent_calls if a in BILLING_ACTIONS)
        received_keys = Counter(_billing_key(a, p) for a, p in received_calls if a in BILLING_ACTIONS)
        chargers.append(
            ChargerBilling(
                charge_box_id=charge_box_id,
                starts_sent=sum(1 for a, _ in sent_calls if a == "StartTransaction"),
                starts_received=sum(1 for a, _ in received_calls if a == "StartTransaction"),
                stops_sent=sum(1 for a, _ in sent_calls if a == "StopTransaction"),
                stops_received=sum(1 for a, _ in received_calls if a == "StopTransaction"),
                missing=tuple(sorted(key for key in sent_keys if received_keys[key] == 0)),
                duplicated=tuple(sorted(key for key in sent_keys if received_keys[key] > 1)),
                unexpected=tuple(sorted(key for key in received_keys if key not in sent_keys)),
            )
        )
    return Billing(tuple(chargers), dict(calls_sent), dict(calls_received))


def build_report(
    *,
    scenario: str,
    speed: float,
    scenario_s: float,
    wall_s: float,
    limit_a: float,
    reaction_bound_s: float,
    samples: Sequence[Sample],
    cars: Iterable[CarOutcome],
    billing: Billing,
    charge_box_ids: Iterable[str] = (),
    balancing: str = "on",
    interrupted: bool = False,
) -> Report:
    cars = tuple(cars)
    energy: dict[str, float] = dict.fromkeys(charge_box_ids, 0.0)
    for car in cars:
        energy[car.charge_box_id] = energy.get(car.charge_box_id, 0.0) + car.energy_delivered_wh
    return Report(
        scenario=scenario,
        speed=speed,
        scenario_s=scenario_s,
        wall_s=wall_s,
        limit_a=limit_a,
        reaction_bound_s=reaction_bound_s,
        phases=phase_reports(samples, limit_a),
        energy_delivered_wh=energy,
        cars=cars,
        billing=billing,
        balancing=balancing,
        interrupted=interrupted,
    )


__all__ = [
    "Billing",
    "CarOutcome",
    "ChargerBilling",
    "PhaseReport",
    "Report",
    "billing_check",
    "build_report",
    "phase_reports",
]
