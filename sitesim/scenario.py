"""Demo scenarios: a site described in TOML, parsed into frozen dataclasses.

Pure: stdlib only (tomllib), no files, no clock. Scenario time `t_s` is seconds since the
scenario started; `Scenario.start_s` places t_s = 0 at a time of day, so a daily curve, PV and
"HH:MM" times mean what they say. The format is documented in docs/demo.md.

    scenario = parse_scenario(text, source="office-day.toml")   # ScenarioError on a bad file
    scenario.base_load_a(3600.0)      # (L1, L2, L3) A one hour in
    scenario.pv_feed_in_a(3600.0)     # (L1, L2, L3) A fed in
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

SITE_PHASES = ("L1", "L2", "L3")
KINDS = ("ac1", "ac3", "dc")
RATE_UNITS = ("A", "W")
DAY_S = 86_400.0

PhaseCurrents = tuple[float, float, float]


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the field."""


@dataclass(frozen=True)
class SiteSpec:
    fuse_a: float  # per phase, at the grid connection
    margin_a: float = 0.0
    grid_limit_kw: float | None = None
    failsafe_current_a: float = 6.0
    nominal_voltage_v: float = 230.0

    @property
    def limit_a(self) -> float:
        """What the grid must stay under: the fuse (the margin is LinkRay's own reserve)."""
        return self.fuse_a


@dataclass(frozen=True)
class LoadStep:
    at_s: float
    current_a: PhaseCurrents


@dataclass(frozen=True)
class LoadRamp:
    from_s: float
    to_s: float
    current_a: PhaseCurrents


@dataclass(frozen=True)
class CurvePoint:
    time_of_day_s: float
    factor: float


@dataclass(frozen=True)
class BaseLoad:
    current_a: PhaseCurrents = (0.0, 0.0, 0.0)
    steps: tuple[LoadStep, ...] = ()
    ramps: tuple[LoadRamp, ...] = ()
    curve: tuple[CurvePoint, ...] = ()  # time-of-day factors, linear between points, wrapping


@dataclass(frozen=True)
class PvFeedIn:
    peak_a: PhaseCurrents
    sunrise_s: float  # time of day
    sunset_s: float


@dataclass(frozen=True)
class ChargerSpec:
    charge_box_id: str
    kind: str  # ac1 | ac3 | dc
    phases: tuple[str, ...]  # site phases of the charger's L1[, L2, L3]
    max_current_a: float | None = None  # AC
    max_power_w: float | None = None  # DC (or an AC power cap)
    accepts: tuple[str, ...] = ("A", "W")  # rate units its SetChargingProfile takes
    priority: int = 0
    min_current_a: float = 6.0
    balanced: bool = True

    @property
    def allowed_rate_units(self) -> str:
        """OCPP ChargingScheduleAllowedChargingRateUnit."""
        return ",".join({"A": "Current", "W": "Power"}[unit] for unit in self.accepts)

    @property
    def rate_unit(self) -> str:
        """The unit LinkRay is told to send: W for a DC charger that takes W, else A if it can."""
        if "W" in self.accepts and (self.kind == "dc" or "A" not in self.accepts):
            return "W"
        return "A"


@dataclass(frozen=True)
class CarSpec:
    charge_box_id: str
    arrive_s: float
    leave_s: float | None  # None: stays until the end
    energy_wh: float
    max_current_a: float | None = None
    max_power_w: float | None = None
    taper_from: float | None = 0.8


@dataclass(frozen=True)
class Outage:
    """The CSMS unreachable from `from_s` to `to_s` (scenario time)."""

    from_s: float
    to_s: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start_s: float  # time of day at t_s = 0
    duration_s: float
    site: SiteSpec
    base_load: BaseLoad
    chargers: tuple[ChargerSpec, ...]
    cars: tuple[CarSpec, ...]
    pv: PvFeedIn | None = None
    csms_outages: tuple[Outage, ...] = ()
    reaction_delay_s: float = 2.0  # the chargers', scenario seconds
    meter_value_interval_s: float = 60.0  # the chargers', scenario seconds
    source: str = "<scenario>"

    def time_of_day_s(self, t_s: float) -> float:
        return (self.start_s + t_s) % DAY_S

    def clock(self, t_s: float) -> str:
        """'HH:MM' of the scenario's day at t_s (a later day shows as '+1d HH:MM')."""
        days, rest = divmod(self.start_s + t_s, DAY_S)
        label = f"{int(rest // 3600):02d}:{int(rest % 3600 // 60):02d}"
        return f"+{int(days)}d {label}" if days else label

    def base_load_a(self, t_s: float) -> PhaseCurrents:
        """The building's load per phase at scenario time t_s: level (steps, ramps) x curve."""
        level = self.base_load.current_a
        events = sorted(
            [(step.at_s, step.at_s, step.current_a) for step in self.base_load.steps]
            + [(ramp.from_s, ramp.to_s, ramp.current_a) for ramp in self.base_load.ramps]
        )
        for from_s, to_s, target in events:
            if t_s < from_s:
                break
            if t_s >= to_s:
                level = target
            else:
                fraction = (t_s - from_s) / (to_s - from_s)
                level = tuple(a + (b - a) * fraction for a, b in zip(level, target))
        factor = curve_factor(self.base_load.curve, self.time_of_day_s(t_s))
        return tuple(round(value * factor, 3) for value in level)

    def pv_feed_in_a(self, t_s: float) -> PhaseCurrents:
        """PV fed in per phase: a half-sine between sunrise and sunset, peak at midday."""
        if self.pv is None:
            return (0.0, 0.0, 0.0)
        time_s = self.time_of_day_s(t_s)
        if not self.pv.sunrise_s < time_s < self.pv.sunset_s:
            return (0.0, 0.0, 0.0)
        shape = math.sin(math.pi * (time_s - self.pv.sunrise_s) / (self.pv.sunset_s - self.pv.sunrise_s))
        return tuple(round(peak * shape, 3) for peak in self.pv.peak_a)

    def charger(self, charge_box_id: str) -> ChargerSpec:
        return next(spec for spec in self.chargers if spec.charge_box_id == charge_box_id)


def curve_factor(curve: tuple[CurvePoint, ...], time_of_day_s: float) -> float:
    """Linear between the curve's points, wrapping around midnight; 1 without a curve."""
    if not curve:
        return 1.0
    points = sorted(curve, key=lambda point: point.time_of_day_s)
    if len(points) == 1:
        return points[0].factor
    extended = [CurvePoint(points[-1].time_of_day_s - DAY_S, points[-1].factor), *points,
                CurvePoint(points[0].time_of_day_s + DAY_S, points[0].factor)]
    for left, right in zip(extended, extended[1:]):
        if left.time_of_day_s <= time_of_day_s <= right.time_of_day_s:
            span_s = right.time_of_day_s - left.time_of_day_s
            fraction = 0.0 if span_s == 0 else (time_of_day_s - left.time_of_day_s) / span_s
            return left.factor + (right.factor - left.factor) * fraction
    return points[0].factor  # unreachable: the extended points cover the day


# --- reading the file --------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_duration_s(value: object, where: str = "duration") -> float:
    """3600, 90.5, "90m", "1h30m", "45s" -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: expected seconds or a duration such as \"1h30m\", got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not match or not any(match.groups()):
                raise ScenarioError(f"{where}: expected seconds or a duration such as \"1h30m\", got {value!r}") from None
            hours, minutes, secs = (float(group or 0) for group in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ScenarioError(f"{where}: expected seconds or a duration such as \"1h30m\", got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScenarioError(f"{where}: must be more than 0 s, got {value!r}")
    return seconds


def parse_time_of_day_s(value: object, where: str) -> float:
    """"07:30" -> 27000.0."""
    match = _TIME_OF_DAY.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ScenarioError(f"{where}: expected a time of day \"HH:MM\", got {value!r}")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ScenarioError(f"{where}: {value!r} is not a time of day")
    return hours * 3600.0 + minutes * 60.0 + seconds


def parse_moment_s(value: object, start_s: float, where: str) -> float:
    """A moment of the scenario as t_s: "HH:MM" (the next such time at or after the start, so a
    night runs past midnight), "+90m" (after the start), or a number of seconds after it."""
    if isinstance(value, str) and value.strip().startswith("+"):
        return parse_duration_s(value.strip()[1:], where)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ScenarioError(f"{where}: seconds after the start must be 0 or more, got {value!r}")
        return float(value)
    if isinstance(value, str) and value.strip() in ("0", "+0", "start"):
        return 0.0
    return (parse_time_of_day_s(value, where) - start_s) % DAY_S


class _Table:
    """A TOML table read field by field; leftover keys are an error (a typo never passes)."""

    def __init__(self, data: object, where: str):
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{where}: expected a table, got {data!r}")
        self.data = dict(data)
        self.where = where
        self.read: set[str] = set()

    def field(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, default=None):
        self.read.add(name)
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.data

    def number(self, name: str, default=None, *, minimum: float | None = None, positive: bool = False, required: bool = False):
        value = self.get(name)
        if value is None:
            if required:
                raise ScenarioError(f"{self.field(name)}: required")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScenarioError(f"{self.field(name)}: expected a number, got {value!r}")
        if positive and value <= 0:
            raise ScenarioError(f"{self.field(name)}: must be more than 0, got {value!r}")
        if minimum is not None and value < minimum:
            raise ScenarioError(f"{self.field(name)}: must be at least {minimum}, got {value!r}")
        return float(value)

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise ScenarioError(f"{self.field(name)}: required")
            return default
        if not isinstance(value, str):
            raise ScenarioError(f"{self.field(name)}: expected text, got {value!r}")
        return value

    def tables(self, name: str) -> list[object]:
        value = self.get(name, [])
        if not isinstance(value, list):
            raise ScenarioError(f"{self.field(name)}: expected a list of tables ([[{self.field(name)}]])")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read))
            raise ScenarioError(f"{self.where or 'scenario'}: unknown field(s) {', '.join(unknown)} (known: {known})")


def phase_currents(value: object, where: str) -> PhaseCurrents:
    """12 -> every phase; [12, 8, 8] -> L1..L3; {L2 = 5} -> L2 only. Never negative."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        values = (float(value),) * 3
    elif isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        values = tuple(float(v) for v in value)
    elif isinstance(value, Mapping) and set(value) <= set(SITE_PHASES) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        values = tuple(float(value.get(phase, 0.0)) for phase in SITE_PHASES)
    else:
        raise ScenarioError(f"{where}: expected A per phase: a number, [L1, L2, L3] or {{L1 = .., L2 = ..}}, got {value!r}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ScenarioError(f"{where}: currents must be finite and 0 or more, got {value!r}")
    return values  # type: ignore[return-value]


def _site(data: object) -> SiteSpec:
    table = _Table(data, "site")
    site = SiteSpec(
        fuse_a=table.number("fuse_a", required=True, positive=True),
        margin_a=table.number("margin_a", 0.0, minimum=0),
        grid_limit_kw=table.number("grid_limit_kw", None, positive=True),
        failsafe_current_a=table.number("failsafe_current_a", 6.0, minimum=0),
        nominal_voltage_v=table.number("nominal_voltage_v", 230.0, positive=True),
    )
    table.done()
    if site.margin_a >= site.fuse_a:
        raise ScenarioError(f"site.margin_a: must be smaller than site.fuse_a ({site.fuse_a} A), got {site.margin_a}")
    return site


def _base_load(data: object, start_s: float) -> BaseLoad:
    table = _Table(data, "base_load")
    current_a = phase_currents(table.get("current_a", 0.0), "base_load.current_a")
    steps = []
    for index, item in enumerate(table.tables("steps")):
        step = _Table(item, f"base_load.steps[{index}]")
        if not step.has("at"):
            raise ScenarioError(f"{step.field('at')}: required")
        if not step.has("current_a"):
            raise ScenarioError(f"{step.field('current_a')}: required")
        steps.append(LoadStep(parse_moment_s(step.get("at"), start_s, step.field("at")),
                              phase_currents(step.get("current_a"), step.field("current_a"))))
        step.done()
    ramps = []
    for index, item in enumerate(table.tables("ramps")):
        ramp = _Table(item, f"base_load.ramps[{index}]")
        for name in ("from", "to", "current_a"):
            if not ramp.has(name):
                raise ScenarioError(f"{ramp.field(name)}: required")
        from_s = parse_moment_s(ramp.get("from"), start_s, ramp.field("from"))
        to_s = parse_moment_s(ramp.get("to"), start_s, ramp.field("to"))
        if to_s <= from_s:
            raise ScenarioError(f"{ramp.field('to')}: must come after {ramp.field('from')}")
        ramps.append(LoadRamp(from_s, to_s, phase_currents(ramp.get("current_a"), ramp.field("current_a"))))
        ramp.done()
    curve = []
    raw_curve = table.get("curve", [])
    if not isinstance(raw_curve, list):
        raise ScenarioError("base_load.curve: expected a list of [\"HH:MM\", factor] pairs")
    for index, point in enumerate(raw_curve):
        where = f"base_load.curve[{index}]"
        if not (isinstance(point, list) and len(point) == 2):
            raise ScenarioError(f"{where}: expected [\"HH:MM\", factor], got {point!r}")
        factor = point[1]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not math.isfinite(factor) or factor < 0:
            raise ScenarioError(f"{where}: the factor must be a number, 0 or more, got {factor!r}")
        curve.append(CurvePoint(parse_time_of_day_s(point[0], where), float(factor)))
    table.done()
    events = sorted([(s.at_s, s.at_s, f"steps at {s.at_s:g} s") for s in steps] + [(r.from_s, r.to_s, f"ramp from {r.from_s:g} s") for r in ramps])
    for (_, end_s, name), (next_start_s, _, next_name) in zip(events, events[1:]):
        if next_start_s < end_s:
            raise ScenarioError(f"base_load: {next_name} starts inside the {name} (events must not overlap)")
    return BaseLoad(current_a, tuple(steps), tuple(ramps), tuple(curve))


def _pv(data: object) -> PvFeedIn:
    table = _Table(data, "pv")
    if not table.has("peak_a"):
        raise ScenarioError("pv.peak_a: required")
    pv = PvFeedIn(
        peak_a=phase_currents(table.get("peak_a"), "pv.peak_a"),
        sunrise_s=parse_time_of_day_s(table.get("sunrise", "06:00"), "pv.sunrise"),
        sunset_s=parse_time_of_day_s(table.get("sunset", "20:00"), "pv.sunset"),
    )
    table.done()
    if pv.sunset_s <= pv.sunrise_s:
        raise ScenarioError("pv.sunset: must come after pv.sunrise")
    return pv


def _charger(data: object, index: int) -> ChargerSpec:
    table = _Table(data, f"chargers[{index}]")
    charge_box_id = table.text("id", required=True)
    if not charge_box_id or len(charge_box_id) > 48 or not re.fullmatch(r"[A-Za-z0-9._-]+", charge_box_id):
        raise ScenarioError(f"{table.field('id')}: 1-48 letters, digits, '.', '_' or '-', got {charge_box_id!r}")
    kind = table.text("kind", required=True)
    if kind not in KINDS:
        raise ScenarioError(f"{table.field('kind')}: {kind!r} is not one of {', '.join(KINDS)}")
    phases = table.get("phases", ["L1"] if kind == "ac1" else list(SITE_PHASES))
    if not isinstance(phases, list) or not all(isinstance(phase, str) for phase in phases):
        raise ScenarioError(f"{table.field('phases')}: expected a list of site phases such as [\"L2\"], got {phases!r}")
    phases = tuple(phase.upper() for phase in phases)
    expected = 1 if kind == "ac1" else 3
    if len(phases) != expected or len(set(phases)) != expected or not set(phases) <= set(SITE_PHASES):
        raise ScenarioError(
            f"{table.field('phases')}: a {kind} charger is wired to {expected} distinct site phase(s) of L1, L2, L3, got {list(phases)}"
        )
    max_current_a = table.number("max_current_a", None, positive=True)
    max_power_kw = table.number("max_power_kw", None, positive=True)
    if kind == "dc" and max_power_kw is None:
        raise ScenarioError(f"{table.field('max_power_kw')}: required for a dc charger")
    if kind != "dc" and max_current_a is None:
        raise ScenarioError(f"{table.field('max_current_a')}: required for an {kind} charger")
    accepts = table.get("accepts", ["A", "W"])
    if isinstance(accepts, str):
        accepts = [accepts]
    if not isinstance(accepts, list) or not accepts or not all(unit in RATE_UNITS for unit in accepts):
        raise ScenarioError(f"{table.field('accepts')}: expected [\"A\"], [\"W\"] or [\"A\", \"W\"], got {accepts!r}")
    priority = table.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ScenarioError(f"{table.field('priority')}: expected a whole number, got {priority!r}")
    balanced = table.get("balanced", True)
    if not isinstance(balanced, bool):
        raise ScenarioError(f"{table.field('balanced')}: expected true or false, got {balanced!r}")
    spec = ChargerSpec(
        charge_box_id=charge_box_id,
        kind=kind,
        phases=phases,
        max_current_a=max_current_a,
        max_power_w=None if max_power_kw is None else max_power_kw * 1000,
        accepts=tuple(unit for unit in RATE_UNITS if unit in accepts),
        priority=priority,
        min_current_a=table.number("min_current_a", 6.0, minimum=0),
        balanced=balanced,
    )
    table.done()
    return spec


def _car(data: object, index: int, start_s: float, chargers: Mapping[str, ChargerSpec]) -> CarSpec:
    table = _Table(data, f"cars[{index}]")
    charge_box_id = table.text("charger", required=True)
    if charge_box_id not in chargers:
        raise ScenarioError(f"{table.field('charger')}: no charger {charge_box_id!r} (chargers: {', '.join(chargers)})")
    if not table.has("arrive"):
        raise ScenarioError(f"{table.field('arrive')}: required")
    arrive_s = parse_moment_s(table.get("arrive"), start_s, table.field("arrive"))
    leave = table.get("leave")
    leave_s = None if leave is None else parse_moment_s(leave, start_s, table.field("leave"))
    if leave_s is not None and leave_s <= arrive_s:
        raise ScenarioError(f"{table.field('leave')}: must come after {table.field('arrive')}")
    max_power_kw = table.number("max_power_kw", None, positive=True)
    taper_from = table.number("taper_from", 0.8, minimum=0)
    if taper_from > 1:
        raise ScenarioError(f"{table.field('taper_from')}: a fraction of the energy wanted, 0 to 1, got {taper_from}")
    car = CarSpec(
        charge_box_id=charge_box_id,
        arrive_s=arrive_s,
        leave_s=leave_s,
        energy_wh=table.number("energy_kwh", required=True, positive=True) * 1000,
        max_current_a=table.number("max_current_a", None, positive=True),
        max_power_w=None if max_power_kw is None else max_power_kw * 1000,
        taper_from=taper_from,
    )
    table.done()
    return car


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """A scenario from TOML text; ScenarioError names `source` and the field at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{source}: not valid TOML: {error}") from None
    try:
        return _scenario(data, source)
    except ScenarioError as error:
        raise ScenarioError(f"{source}: {error}") from None


def _scenario(data: dict, source: str) -> Scenario:
    table = _Table(data, "")
    name = table.text("name", required=True)
    start_s = parse_time_of_day_s(table.get("start", "00:00"), "start")
    if not table.has("duration"):
        raise ScenarioError("duration: required (e.g. \"10h\")")
    duration_s = parse_duration_s(table.get("duration"), "duration")
    if not table.has("site"):
        raise ScenarioError("site: required ([site] with fuse_a)")
    site = _site(table.get("site"))
    base_load = _base_load(table.get("base_load", {}), start_s)
    pv = _pv(table.get("pv")) if table.has("pv") else None
    chargers = tuple(_charger(item, index) for index, item in enumerate(table.tables("chargers")))
    if not chargers:
        raise ScenarioError("chargers: at least one [[chargers]] is needed")
    by_id: dict[str, ChargerSpec] = {}
    for index, charger in enumerate(chargers):
        if charger.charge_box_id in by_id:
            raise ScenarioError(f"chargers[{index}].id: {charger.charge_box_id!r} appears twice")
        by_id[charger.charge_box_id] = charger
    cars = tuple(_car(item, index, start_s, by_id) for index, item in enumerate(table.tables("cars")))
    for charge_box_id in by_id:
        visits = sorted((car.arrive_s, car.leave_s) for car in cars if car.charge_box_id == charge_box_id)
        for (arrive_s, leave_s), (next_arrive_s, _) in zip(visits, visits[1:]):
            if leave_s is None or next_arrive_s < leave_s:
                raise ScenarioError(f"cars: two cars at {charge_box_id} at once (one arrives at {next_arrive_s:g} s, before the other leaves)")
    outages = []
    for index, item in enumerate(table.tables("csms_outages")):
        outage = _Table(item, f"csms_outages[{index}]")
        for field_name in ("from", "to"):
            if not outage.has(field_name):
                raise ScenarioError(f"{outage.field(field_name)}: required")
        from_s = parse_moment_s(outage.get("from"), start_s, outage.field("from"))
        to_s = parse_moment_s(outage.get("to"), start_s, outage.field("to"))
        if to_s <= from_s:
            raise ScenarioError(f"{outage.field('to')}: must come after {outage.field('from')}")
        outages.append(Outage(from_s, to_s))
        outage.done()
    outages.sort(key=lambda outage: outage.from_s)
    for outage, following in zip(outages, outages[1:]):
        if following.from_s < outage.to_s:
            raise ScenarioError("csms_outages: outages must not overlap")
    chargers_table = _Table(table.get("simulation", {}), "simulation")
    reaction_delay_s = chargers_table.number("reaction_delay_s", 2.0, minimum=0)
    meter_value_interval_s = chargers_table.number("meter_value_interval_s", 60.0, positive=True)
    chargers_table.done()
    scenario = Scenario(
        name=name,
        description=table.text("description", "") or "",
        start_s=start_s,
        duration_s=duration_s,
        site=site,
        base_load=base_load,
        chargers=chargers,
        cars=cars,
        pv=pv,
        csms_outages=tuple(outages),
        reaction_delay_s=reaction_delay_s,
        meter_value_interval_s=meter_value_interval_s,
        source=source,
    )
    table.done()
    return scenario


__all__ = [
    "BaseLoad",
    "CarSpec",
    "ChargerSpec",
    "CurvePoint",
    "LoadRamp",
    "LoadStep",
    "Outage",
    "PvFeedIn",
    "Scenario",
    "ScenarioError",
    "SiteSpec",
    "curve_factor",
    "parse_duration_s",
    "parse_moment_s",
    "parse_scenario",
    "parse_time_of_day_s",
    "phase_currents",
]
