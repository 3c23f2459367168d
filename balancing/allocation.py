"""Dynamic load balancing: share the site's grid connection among the controlled chargers.

Pure and deterministic: stdlib only, no Django, no I/O, no clock (`now_s` is an argument, monotonic
seconds). Same inputs, same output; ties are broken by `charge_box_id`.

Public API
----------
- `allocate(site, grid_current_a, chargers, *, now_s, rotation_period_s=900.0, lend_after_s=60.0,
  resume_after_s=30.0, previous_uncontrolled_a=None, previous_at_s=None, ramp_s=RAMP_S,
  hold_max_age_s=HOLD_MAX_AGE_S, release_grace_s=RELEASE_GRACE_S) -> Allocation`
- `SiteLimits`, `ChargerInput` (inputs), `Allocation`, `ChargerAllocation` (output), `Reason`.
- `Allocation.for_charger(charge_box_id) -> ChargerAllocation | None`.
- `LEND_BELOW_LIMIT_A`, `LEND_HEADROOM_A`: the lending thresholds (see below).

All currents are per phase in A; a DC charger's power is expressed as the A-equivalent per phase,
`power_w / (3 * nominal_voltage_v)`, and counts on all three site phases.

How the site is shared
----------------------
1. Failsafe. `grid_current_a is None` (stale or missing meter; also a reading that is not three
   finite numbers): every controlled charger gets `failsafe_current_a`, capped by its maximum and
   CSMS cap, and 0 if that cap is below its minimum. Nothing is computed from the grid.
2. Limit in force, per phase: `min(grid_limit_a, setpoint_a)`. A kW cap, `min(grid_limit_kw,
   setpoint_kw)`, limits the SUM over the phases (`sum(current_a) * nominal_voltage_v`); it is
   reported in `limit_in_force_a` as its balanced per-phase equivalent `kw * 1000 / (3 * V)`.
3. Uncontrolled load per phase = grid reading - what the controlled chargers draw (their
   `measured_current_a`, on site phases), clamped at 0: PV export is never counted on to lift the
   fuse (a cloud would take it away before the next cycle). Chargers with `controllable=False` are
   part of it. Available per phase = limit in force - margin - uncontrolled (for the kW cap:
   cap - 3 * margin - sum of uncontrolled). Two refinements, 3a and 3b, below.
3a. A draw sample from before a raise. The grid meter is polled every second; a charger reports
   MeterValues every 10-60 s. Right after LinkRay raises a charger from L0 to L1, the grid already
   shows the car ramping while its last MeterValues still say L0, so `grid - measured` counts the
   raise as building load and the next cycle cuts it again (14.3 -> 7.6 -> 14.3 A, one oscillation
   per raise; worse with a 60 s MeterValues interval). A sample is STALE when it was taken
   (`measured_at_s`, None: unknown) before `limit_raised_at_s + ramp_s` (a car follows a new limit
   within a few seconds; IEC 61851 allows 5 s). Per phase the uncontrolled load U is then only
   known within bounds:
     high = grid - measured draw                        (the usual estimate: too high by what the
                                                          stale chargers ramped since their sample)
     low  = grid - fresh draw - stale chargers' limit   (each stale charger at the most it may
                                                          draw now: its limit in force)
   Chargers obey their limit, so low <= U <= high. Used: U = max(low, min(high, previous U)), with
   `previous_uncontrolled_a`, the estimate of the last cycle (ignored when older than
   `hold_max_age_s`, bad or missing: then `high`, the old behaviour). So a grid rise that matches
   the raised car ramping is not taken for building load (no cut after a raise); a fall of the
   building load is seen at once (`high` falls); a rise is seen as soon as it shows above `low`:
   at once when the raised car has ramped, at the latest at its next MeterValues.
   Why this does not overload the site: every limit is allocated within `limit - margin - U`.
   With the building's load unchanged since the previous estimate, that estimate is exact and
   lies within the bounds, so it is used as is. U falls below the truth only when the building's
   load rose during the stale window, and then by at most the smaller of that rise and `d`, what
   the stale car draws under its limit; while it draws that much less than it was given, the site
   stays within `limit - margin`. If it ramps later, `low` becomes exact and the next cycle sees
   the rise: in between the site may pass `limit - margin` by at most that amount, and on a phase
   whose grid reading is over the limit in force (or with a total over the kW cap) nothing is
   held: `high` is used and the cut goes out at once, as for any load step between two readings.
   That cut may be deeper than needed (a stale car counts at its last sample, not at what it
   draws now): the fuse comes first; the next MeterValues set it right.
3b. A released charger. When LinkRay lets go of a charger (balancing switched off: LinkRay's
   profile is cleared; or the charger refused LinkRay's profile), it may jump to its ceiling
   within seconds, before its MeterValues and even the grid meter show it; raising others in the
   same cycle would put the site over the limit until the next cut (and then the cut cars wait
   `resume_after_s`). A charger with `controllable=False` and `released_at_s` less than
   `release_grace_s` ago therefore counts at its ceiling (its maximum, capped by the CSMS; without
   either, the limit in force) on the phases it loads: `high` gets its ceiling minus its measured
   draw on top (safe even when the grid already shows part of the jump), `low` does not; the same
   hold as in 3a keeps U from counting the jump twice once the grid shows it (its MeterValues lag
   too). A charger released after `previous_at_s` was controlled in the previous estimate, so its
   ceiling is added to that estimate before it is held. After the grace period its draw is in the
   grid reading like any load LinkRay does not control.
4. Priorities are strict: a higher priority level is served completely (up to its chargers'
   maximums) before a lower level gets what is left.
5. Within a level, chargers are admitted at their minimum in rotation order while the minimum fits
   on every phase they load; the others are paused (0 A, never between 0 and the minimum).
   Rotation order: chargers running for less than `rotation_period_s` (most recent start first,
   so the one charging longest yields first when capacity shrinks), then paused chargers (paused
   longest first; a charger with neither time is new and counts as paused since `now_s`), then
   chargers that have run for `rotation_period_s` or more (the one charging longest last). So a
   charger that has had its period yields to the one waiting longest; nobody flaps within a period.
   The control side keeps `charging_since_s` (set when LinkRay's limit goes from 0 to > 0) and
   `paused_since_s` (set when it goes to 0). A charger LinkRay paused less than `resume_after_s`
   ago stays paused (reason PAUSED_IN_ROTATION if its minimum would fit): when the free capacity
   hovers around a minimum, a car is not switched on and off every cycle.
6. The admitted chargers share the rest by water-filling: one level rises for all of them; each
   stays within [minimum, min(maximum, CSMS cap, demand)]; a charger stops rising when it reaches
   its cap or when a phase it loads (or the kW cap) is full, and what it leaves flows to the
   others. Equal priorities therefore end up equal unless a cap or a full phase stops one.
7. Lending. A car that draws well under its limit (max over its phases `< limit_a -
   LEND_BELOW_LIMIT_A`) and whose limit was last raised `lend_after_s` ago or more (not ramping;
   `limit_raised_at_s`, or `charging_since_s` when that is unknown) is capped at its draw +
   `LEND_HEADROOM_A` (at least its minimum); a car `suspended_by_ev` is capped at its minimum. The
   rest goes to others. When it draws within `LEND_BELOW_LIMIT_A` of its lent limit, the cap is
   lifted and it gets its fair share back the next cycle. Reason LENT when that cap binds. The
   control side sets `limit_raised_at_s` only when it raises a limit, so lending (a reduction)
   does not restart the wait and a lent car stays lent while its draw stays low.
8. Idle chargers (controlled, no transaction): reason IDLE, limit = their minimum when that still
   fits in what is left after every charging car (taken in priority, then `charge_box_id` order),
   else 0. So a newly arriving car can start at its minimum without tripping anything, and
   capacity is never reserved away from cars that charge. `capacity_left_a` is reported before
   these standby limits (what the operator can still use); `standby_left_a` after them (what
   pacing may leave unsent without any risk). In failsafe an idle charger gets the failsafe limit.
9. Not controllable chargers: reason NOT_CONTROLLABLE, limit = their maximum (nothing is sent);
   without a configured maximum, the site's `grid_limit_a`.

Limits are rounded down to 0.1 A (OCPP's resolution) but never below the minimum.

Bad input never raises: a value that is not a finite number, a negative one, an unknown kind or
an impossible wiring gets a safe fallback (listed in `Allocation.problems` for the adapter to log):
unknown kind or bad wiring -> counted on all three phases; bad caps -> 0 (paused); bad minimum ->
6 A; bad measured current -> 0 (so its draw counts as uncontrolled); bad site limit -> 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

LEND_BELOW_LIMIT_A = 2.0  # a car drawing less than its limit minus this is lent from
LEND_HEADROOM_A = 3.0  # a lending car keeps its draw plus this (> LEND_BELOW_LIMIT_A: no flapping)
DEFAULT_MIN_CURRENT_A = 6.0
RAMP_S = 5.0  # a car follows a raised limit within this (IEC 61851): a sample older is stale (3a)
HOLD_MAX_AGE_S = 10.0  # the previous uncontrolled-load estimate is held at most this old (3a)
RELEASE_GRACE_S = 30.0  # a released charger counts at its ceiling this long (3b)
ALL_PHASES = (0, 1, 2)
_EPSILON = 1e-9
_POWER_CAP = 3  # index of the kW-cap resource, after the three phases
# What a charger loading these site phases uses per A of its limit: (resource, A) pairs.
_RESOURCES = {
    phases: tuple((phase, 1.0) for phase in phases) + ((_POWER_CAP, float(len(phases))),)
    for phases in ((0,), (1,), (2,), ALL_PHASES)
}


class Reason(StrEnum):
    """Why a charger has its limit; shown to operators, so the values are readable."""

    FAIR_SHARE = "fair share"
    CAPPED_BY_CSMS = "capped by CSMS"
    CAPPED_BY_MAXIMUM = "capped by its maximum"
    PAUSED_BELOW_MINIMUM = "paused: below minimum"
    PAUSED_IN_ROTATION = "paused in rotation"
    FAILSAFE = "failsafe"
    NOT_CONTROLLABLE = "not controllable"
    IDLE = "no car charging"
    LENT = "lending unused capacity"


@dataclass(frozen=True, slots=True)
class SiteLimits:
    grid_limit_a: float  # per phase, main fuse
    margin_a: float = 0.0  # kept free below the limit
    grid_limit_kw: float | None = None  # total import cap (all phases)
    setpoint_a: float | None = None  # energy system's per-phase import cap (None: none)
    setpoint_kw: float | None = None  # energy system's total import cap
    failsafe_current_a: float = 6.0  # per charger while the meter is stale
    nominal_voltage_v: float = 230.0


@dataclass(frozen=True, slots=True)
class ChargerInput:
    charge_box_id: str
    kind: str  # "ac1" | "ac3" | "dc"
    wiring: tuple[int, ...]  # site phase index (0..2) of the charger's L1[,L2,L3]; dc: (0,1,2)
    min_current_a: float = 6.0  # per phase; for dc the minimum is min_power_w = this*3*V unless given
    max_current_a: float | None = None  # AC, per phase
    max_power_w: float | None = None  # DC total
    priority: int = 0  # higher gets capacity first
    controllable: bool = True  # False: rejected profiles / no answer -> its draw counts as uncontrolled
    wants_current: bool = False  # a transaction runs (car plugged, not finished)
    suspended_by_ev: bool = False  # SuspendedEV: car takes nothing now
    measured_current_a: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its draw on SITE phases L1..L3
    limit_a: float | None = None  # LinkRay's limit in force on it now (per phase A; dc: A-equivalent per phase)
    csms_cap_a: float | None = None  # what the CSMS's own profiles allow now (per phase A), None: no cap
    csms_cap_w: float | None = None  # same, when the CSMS's composite is in W
    charging_since_s: float | None = None  # when it last got current (for rotation), monotonic seconds
    paused_since_s: float | None = None  # when LinkRay last paused it
    min_power_w: float | None = None  # DC minimum power; None: min_current_a * 3 * V
    limit_raised_at_s: float | None = None  # when LinkRay last RAISED its limit (lending waits for the ramp);
    #                                         a reduction (lending itself) leaves it unchanged
    measured_at_s: float | None = None  # when `measured_current_a` was sampled (its MeterValues); None: unknown
    released_at_s: float | None = None  # not controllable: when LinkRay let go of it (balancing off, refused)


@dataclass(frozen=True, slots=True)
class ChargerAllocation:
    charge_box_id: str
    limit_a: float  # per phase; 0.0 = paused; never between 0 and its minimum
    limit_w: float  # same as total power at nominal voltage (what a W-unit charger or DC gets)
    reason: Reason


@dataclass(frozen=True, slots=True)
class Allocation:
    chargers: tuple[ChargerAllocation, ...]  # in input order
    limit_in_force_a: float  # per phase, after setpoint/power cap (before margin)
    limit_reason: str  # "site limit" | "setpoint" | "power cap"
    uncontrolled_a: tuple[float, float, float] | None  # None in failsafe
    capacity_left_a: float | None  # min over phases of (limit - margin - uncontrolled - allocated)
    failsafe: bool
    problems: tuple[str, ...] = ()  # bad inputs and the fallback taken, for the adapter to log
    standby_left_a: float | None = None  # capacity_left_a after the idle chargers' standby limits
    _by_id: dict[str, ChargerAllocation] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, ChargerAllocation] = {}
        for charger in self.chargers:
            index.setdefault(charger.charge_box_id, charger)
        object.__setattr__(self, "_by_id", index)

    def for_charger(self, charge_box_id: str) -> ChargerAllocation | None:
        return self._by_id.get(charge_box_id)


# --- input checking --------------------------------------------------------------------------


def _number(value: object) -> float | None:
    """A finite float, or None for anything else (None, NaN, inf, strings, bools)."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None  # type: ignore[return-value,operator]  # NaN, inf
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _non_negative(value: object, name: str, fallback: float | None, problems: list[str], owner: str) -> float | None:
    """None stays None (no cap); a finite number >= 0 passes; anything else is the fallback."""
    if value is None:
        return None
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    number = _number(value)
    if number is None or number < 0:
        problems.append(f"{owner} {name}={value!r}: not a number >= 0, using {fallback!r}")
        return fallback
    return number


class _Charger:
    """One controlled charger that wants current, in the units the filling works in."""

    __slots__ = ("index", "charge_box_id", "order_id", "resources", "min_a", "cap_a", "cap_reason", "limit_a", "state",
                 "priority", "rotation_group", "rotation_key", "fits_alone", "held")

    def __init__(self, index: int, charge_box_id: str, resources: tuple[tuple[int, float], ...], min_a: float,
                 cap_a: float, cap_reason: Reason) -> None:
        self.index = index
        self.charge_box_id = charge_box_id
        # Ties are broken by charge_box_id; a non-text one (bad input) must not break the sort.
        self.order_id = charge_box_id if type(charge_box_id) is str else repr(charge_box_id)
        self.resources = resources  # (resource index, A of it per A of limit)
        self.min_a = min_a
        self.cap_a = cap_a
        self.cap_reason = cap_reason
        self.limit_a = 0.0
        self.state = 0  # filling: 0 waiting, 1 rising, 2 stopped
        self.priority = 0
        self.rotation_group = 0
        self.rotation_key = 0.0
        self.fits_alone = False
        self.held = False  # paused too recently to resume (no on/off flapping)


def _floor_tenth(current_a: float) -> float:
    return math.floor(current_a * 10.0 + 1e-6) / 10.0


# --- the allocation --------------------------------------------------------------------------


def allocate(
    site: SiteLimits,
    grid_current_a: tuple[float, float, float] | None,
    chargers: Sequence[ChargerInput],
    *,
    now_s: float,
    rotation_period_s: float = 900.0,
    lend_after_s: float = 60.0,
    resume_after_s: float = 30.0,
    previous_uncontrolled_a: tuple[float, float, float] | None = None,
    previous_at_s: float | None = None,
    ramp_s: float = RAMP_S,
    hold_max_age_s: float = HOLD_MAX_AGE_S,
    release_grace_s: float = RELEASE_GRACE_S,
) -> Allocation:
    problems: list[str] = []
    voltage_v = _number(site.nominal_voltage_v)
    if voltage_v is None or voltage_v <= 0:
        problems.append(f"site nominal_voltage_v={site.nominal_voltage_v!r}: not a positive number, using 230.0")
        voltage_v = 230.0
    grid_limit_a = _non_negative(site.grid_limit_a, "grid_limit_a", 0.0, problems, "site")
    if grid_limit_a is None:
        problems.append("site grid_limit_a=None: using 0.0")
        grid_limit_a = 0.0
    margin_a = _non_negative(site.margin_a, "margin_a", 0.0, problems, "site") or 0.0
    setpoint_a = _non_negative(site.setpoint_a, "setpoint_a", 0.0, problems, "site")
    grid_limit_kw = _non_negative(site.grid_limit_kw, "grid_limit_kw", 0.0, problems, "site")
    setpoint_kw = _non_negative(site.setpoint_kw, "setpoint_kw", 0.0, problems, "site")
    failsafe_current_a = _non_negative(site.failsafe_current_a, "failsafe_current_a", 0.0, problems, "site") or 0.0

    phase_limit_a, limit_reason = grid_limit_a, "site limit"
    if setpoint_a is not None and setpoint_a < phase_limit_a:
        phase_limit_a, limit_reason = setpoint_a, "setpoint"
    power_cap_kw, power_cap_reason = None, "power cap"
    if grid_limit_kw is not None:
        power_cap_kw = grid_limit_kw
    if setpoint_kw is not None and (power_cap_kw is None or setpoint_kw < power_cap_kw):
        power_cap_kw, power_cap_reason = setpoint_kw, "setpoint"
    limit_in_force_a = phase_limit_a
    if power_cap_kw is not None and power_cap_kw * 1000.0 / (3.0 * voltage_v) < limit_in_force_a:
        limit_in_force_a, limit_reason = power_cap_kw * 1000.0 / (3.0 * voltage_v), power_cap_reason

    grid = _grid_reading(grid_current_a, problems)
    failsafe = grid is None
    period_s = _number(rotation_period_s)
    period_s = period_s if period_s is not None and period_s >= 0 else 900.0
    lend_wait_s = _number(lend_after_s)
    lend_wait_s = lend_wait_s if lend_wait_s is not None and lend_wait_s >= 0 else 60.0
    resume_wait_s = _number(resume_after_s)
    resume_wait_s = resume_wait_s if resume_wait_s is not None and resume_wait_s >= 0 else 30.0
    now = _number(now_s)
    if now is None:
        problems.append(f"now_s={now_s!r}: not a number, using 0.0")
        now = 0.0

    count = len(chargers)
    results: list[ChargerAllocation | None] = [None] * count
    phase_counts = [3] * count
    ramp_wait_s = _number(ramp_s)
    ramp_wait_s = ramp_wait_s if ramp_wait_s is not None and ramp_wait_s >= 0 else RAMP_S
    grace_s = _number(release_grace_s)
    grace_s = grace_s if grace_s is not None and grace_s >= 0 else RELEASE_GRACE_S
    controlled_draw = [0.0, 0.0, 0.0]
    stale_extra = [0.0, 0.0, 0.0]  # what stale chargers may draw above their last sample (3a)
    released_extra = [0.0, 0.0, 0.0]  # released chargers' ceiling above their draw (3b)
    newly_released = [0.0, 0.0, 0.0]  # ceilings of chargers still controlled in the previous estimate (3b)
    held_since_s = _number(previous_at_s)
    wanting: list[_Charger] = []
    idle: list[tuple[int, str, _Charger]] = []

    for index, charger in enumerate(chargers):
        owner = f"charge_box_id={getattr(charger, 'charge_box_id', '?')}"
        kind = charger.kind
        wiring = charger.wiring
        if kind not in ("ac1", "ac3", "dc"):
            problems.append(f"{owner} kind={kind!r}: unknown, counted on all three phases")
            phases, power_phases = ALL_PHASES, 3
        elif kind == "dc" and not wiring:
            phases, power_phases = ALL_PHASES, 3
        elif _valid_wiring(wiring, 1 if kind == "ac1" else 3):
            phases, power_phases = ((wiring[0],), 1) if kind == "ac1" else (ALL_PHASES, 3)
        else:
            problems.append(f"{owner} wiring={wiring!r}: impossible for {kind}, counted on all three phases")
            phases, power_phases = ALL_PHASES, (1 if kind == "ac1" else 3)
        phase_counts[index] = power_phases
        to_a = 1.0 / (power_phases * voltage_v)  # W -> A per phase

        if kind == "dc":
            maximum = _non_negative(charger.max_power_w, "max_power_w", 0.0, problems, owner)
            maximum_a = None if maximum is None else maximum * to_a
            min_power_w = _non_negative(charger.min_power_w, "min_power_w", None, problems, owner)
        else:
            maximum_a = _non_negative(charger.max_current_a, "max_current_a", 0.0, problems, owner)
            min_power_w = None
        if min_power_w is not None:
            min_a = min_power_w * to_a
        else:
            min_a = _non_negative(charger.min_current_a, "min_current_a", DEFAULT_MIN_CURRENT_A, problems, owner)
            if min_a is None:
                min_a = DEFAULT_MIN_CURRENT_A

        if not charger.controllable:
            limit_a = maximum_a if maximum_a is not None else grid_limit_a
            released_at_s = _number(charger.released_at_s)
            if released_at_s is not None and 0.0 <= now - released_at_s < grace_s:
                ceiling_a = _released_ceiling_a(charger, maximum_a, to_a, phase_limit_a, problems, owner)
                measured = _measured(charger.measured_current_a, problems, owner)
                for phase in phases:
                    released_extra[phase] += max(0.0, ceiling_a - measured[phase])
                    if held_since_s is not None and released_at_s > held_since_s:
                        newly_released[phase] += ceiling_a
            results[index] = ChargerAllocation(charger.charge_box_id, limit_a, limit_a * power_phases * voltage_v,
                                               Reason.NOT_CONTROLLABLE)
            continue

        measured = _measured(charger.measured_current_a, problems, owner)
        controlled_draw[0] += measured[0]
        controlled_draw[1] += measured[1]
        controlled_draw[2] += measured[2]
        if _is_stale(charger, now, ramp_wait_s):
            in_force_a = _number(charger.limit_a)
            if in_force_a is not None and in_force_a > 0:
                for phase in phases:
                    stale_extra[phase] += max(0.0, in_force_a - measured[phase])

        cap_a, cap_reason = math.inf, Reason.FAIR_SHARE
        if maximum_a is not None:
            cap_a, cap_reason = maximum_a, Reason.CAPPED_BY_MAXIMUM
        csms_cap_a = _non_negative(charger.csms_cap_a, "csms_cap_a", 0.0, problems, owner)
        csms_cap_w = _non_negative(charger.csms_cap_w, "csms_cap_w", 0.0, problems, owner)
        if csms_cap_w is not None and (csms_cap_a is None or csms_cap_w * to_a < csms_cap_a):
            csms_cap_a = csms_cap_w * to_a
        if csms_cap_a is not None and csms_cap_a <= cap_a:
            cap_a, cap_reason = csms_cap_a, Reason.CAPPED_BY_CSMS

        if failsafe:
            limit_a = min(failsafe_current_a, cap_a)
            if limit_a < min_a - _EPSILON:
                limit_a = 0.0
            reason = Reason.FAILSAFE if charger.wants_current else Reason.IDLE
            results[index] = ChargerAllocation(charger.charge_box_id, limit_a, limit_a * power_phases * voltage_v, reason)
            continue

        entry = _Charger(index, charger.charge_box_id, _RESOURCES[phases], min_a, cap_a, cap_reason)
        if not charger.wants_current:
            idle.append((-_priority(charger.priority), entry.order_id, entry))
            continue
        if cap_a < min_a - _EPSILON:
            # The CSMS (or its maximum) allows less than its minimum: it cannot run.
            results[index] = ChargerAllocation(charger.charge_box_id, 0.0, 0.0, cap_reason)
            continue

        charging_since_s = _number(charger.charging_since_s)
        # Lending: a car drawing well under its limit, settled, keeps its draw plus a headroom.
        drawn_a = measured[phases[0]] if len(phases) == 1 else max(measured)
        if charger.suspended_by_ev:
            demand_a = min_a
        else:
            demand_a = math.inf
            in_force_a = _number(charger.limit_a)
            settled_since_s = _number(charger.limit_raised_at_s)
            if settled_since_s is None:
                settled_since_s = charging_since_s
            if (in_force_a is not None and settled_since_s is not None and now - settled_since_s >= lend_wait_s
                    and drawn_a < in_force_a - LEND_BELOW_LIMIT_A):
                demand_a = max(min_a, drawn_a + LEND_HEADROOM_A)
        if demand_a < entry.cap_a:
            entry.cap_a, entry.cap_reason = demand_a, Reason.LENT

        # Rotation order (see the module's docstring, point 5).
        paused_since_s = _number(charger.paused_since_s)
        running = charging_since_s is not None and (paused_since_s is None or charging_since_s > paused_since_s)
        if running and now - charging_since_s < period_s:
            entry.rotation_group, entry.rotation_key = 0, -charging_since_s
        elif running:
            entry.rotation_group, entry.rotation_key = 2, -charging_since_s
        else:
            entry.rotation_group, entry.rotation_key = 1, paused_since_s if paused_since_s is not None else now
            entry.held = paused_since_s is not None and now - paused_since_s < resume_wait_s
        entry.priority = _priority(charger.priority)
        wanting.append(entry)

    if failsafe:
        return Allocation(tuple(results), limit_in_force_a, limit_reason, None, None, True, tuple(problems))

    uncontrolled = _uncontrolled_a(grid, controlled_draw, stale_extra, released_extra, newly_released, phase_limit_a,
                                   power_cap_kw, voltage_v, previous_uncontrolled_a, previous_at_s, now, hold_max_age_s,
                                   problems)
    capacity = [phase_limit_a - margin_a - uncontrolled[phase] for phase in range(3)]
    capacity.append(
        math.inf if power_cap_kw is None
        else power_cap_kw * 1000.0 / voltage_v - 3.0 * margin_a - sum(uncontrolled)
    )
    allocated = [0.0, 0.0, 0.0, 0.0]

    levels: dict[int, list[_Charger]] = {}
    for entry in wanting:
        levels.setdefault(entry.priority, []).append(entry)
    for priority in sorted(levels, reverse=True):
        _serve_level(levels[priority], capacity, allocated)

    for entry in wanting:
        limit_a = entry.limit_a
        if limit_a > 0:
            limit_a = max(_floor_tenth(limit_a), entry.min_a)
            reason = entry.cap_reason if limit_a >= entry.cap_a - 0.1 - _EPSILON else Reason.FAIR_SHARE
        else:
            reason = Reason.PAUSED_IN_ROTATION if entry.fits_alone else Reason.PAUSED_BELOW_MINIMUM
        results[entry.index] = ChargerAllocation(entry.charge_box_id, limit_a,
                                                 limit_a * phase_counts[entry.index] * voltage_v, reason)

    capacity_left_a = min(min(capacity[phase] - allocated[phase] for phase in range(3)),
                          (capacity[_POWER_CAP] - allocated[_POWER_CAP]) / 3.0)

    # Idle chargers: their minimum as a standby limit when it still fits, else 0.
    idle.sort(key=lambda item: (item[0], item[1]))
    for _, _, entry in idle:
        limit_a = 0.0
        if entry.cap_a >= entry.min_a - _EPSILON and _fits(entry, entry.min_a, capacity, allocated):
            limit_a = entry.min_a
            for resource, weight in entry.resources:
                allocated[resource] += weight * limit_a
        results[entry.index] = ChargerAllocation(entry.charge_box_id, limit_a,
                                                 limit_a * phase_counts[entry.index] * voltage_v, Reason.IDLE)

    standby_left_a = min(min(capacity[phase] - allocated[phase] for phase in range(3)),
                         (capacity[_POWER_CAP] - allocated[_POWER_CAP]) / 3.0)
    return Allocation(tuple(results), limit_in_force_a, limit_reason, uncontrolled,  # type: ignore[arg-type]
                      capacity_left_a, False, tuple(problems), standby_left_a)


def _is_stale(charger: ChargerInput, now: float, ramp_wait_s: float) -> bool:
    """Its draw sample predates the car following its last raise (3a)."""
    raised_at_s = _number(charger.limit_raised_at_s)
    if raised_at_s is None or raised_at_s > now:
        return False
    measured_at_s = _number(charger.measured_at_s)
    return measured_at_s is None or measured_at_s < raised_at_s + ramp_wait_s


def _released_ceiling_a(charger: ChargerInput, maximum_a: float | None, to_a: float, phase_limit_a: float,
                        problems: list[str], owner: str) -> float:
    """What a charger LinkRay let go of may draw: its maximum, capped by the CSMS (3b)."""
    ceiling_a = maximum_a
    csms_cap_a = _non_negative(charger.csms_cap_a, "csms_cap_a", None, problems, owner)
    csms_cap_w = _non_negative(charger.csms_cap_w, "csms_cap_w", None, problems, owner)
    for cap_a in (csms_cap_a, None if csms_cap_w is None else csms_cap_w * to_a):
        if cap_a is not None and (ceiling_a is None or cap_a < ceiling_a):
            ceiling_a = cap_a
    return phase_limit_a if ceiling_a is None else ceiling_a


def _uncontrolled_a(grid: tuple[float, float, float], controlled_draw: list[float], stale_extra: list[float],
                    released_extra: list[float], newly_released: list[float], phase_limit_a: float,
                    power_cap_kw: float | None, voltage_v: float, previous: object, previous_at_s: object, now: float,
                    hold_max_age_s: object, problems: list[str]) -> tuple[float, float, float]:
    """The load LinkRay does not control, per phase (3, 3a, 3b): known within [low, high]; the
    previous estimate (plus the ceilings of chargers released since) is held within it, except on
    a phase over the limit (then high)."""
    measured = [max(0.0, grid[phase] - controlled_draw[phase]) for phase in range(3)]
    high = [measured[phase] + released_extra[phase] for phase in range(3)]
    low = [max(0.0, measured[phase] - stale_extra[phase]) for phase in range(3)]
    if all(high[phase] - low[phase] <= _EPSILON for phase in range(3)):
        return (high[0], high[1], high[2])
    held_before = _previous_estimate(previous, previous_at_s, now, hold_max_age_s, problems)
    over_power_cap = power_cap_kw is not None and sum(grid) * voltage_v > power_cap_kw * 1000.0 + _EPSILON
    if held_before is None or over_power_cap:
        return (high[0], high[1], high[2])
    estimate = list(high)
    for phase in range(3):
        if grid[phase] <= phase_limit_a + _EPSILON:  # over the limit: cut at once on the high estimate
            estimate[phase] = max(low[phase], min(high[phase], held_before[phase] + newly_released[phase]))
    return (estimate[0], estimate[1], estimate[2])


def _previous_estimate(previous: object, previous_at_s: object, now: float, hold_max_age_s: object,
                       problems: list[str]) -> tuple[float, float, float] | None:
    if previous is None:
        return None
    at_s = _number(previous_at_s)
    max_age_s = _number(hold_max_age_s)
    max_age_s = max_age_s if max_age_s is not None and max_age_s >= 0 else HOLD_MAX_AGE_S
    if at_s is None or not 0.0 <= now - at_s <= max_age_s:
        return None
    if not isinstance(previous, tuple | list) or len(previous) != 3:
        problems.append(f"previous_uncontrolled_a={previous!r}: not three currents, not held")
        return None
    values = [_number(value) for value in previous]
    if any(value is None or value < 0 for value in values):
        problems.append(f"previous_uncontrolled_a={previous!r}: not three numbers >= 0, not held")
        return None
    return (values[0], values[1], values[2])  # type: ignore[return-value]


def _serve_level(level: list[_Charger], capacity: list[float], allocated: list[float]) -> None:
    """Admit the level's chargers at their minimum in rotation order, then water-fill the rest."""
    level.sort(key=lambda entry: (entry.rotation_group, entry.rotation_key, entry.order_id))
    reserved = list(allocated)
    admitted: list[_Charger] = []
    for entry in level:
        if not entry.held and _fits(entry, entry.min_a, capacity, reserved):  # reserved >= allocated: fits alone
            entry.fits_alone = True
            for resource, weight in entry.resources:
                reserved[resource] += weight * entry.min_a
            admitted.append(entry)
        else:
            entry.fits_alone = _fits(entry, entry.min_a, capacity, allocated)
    if admitted:
        _water_fill(admitted, capacity, allocated)


def _fits(entry: _Charger, current_a: float, capacity: list[float], used: list[float]) -> bool:
    for resource, weight in entry.resources:
        if used[resource] + weight * current_a > capacity[resource] + _EPSILON:
            return False
    return True


def _water_fill(admitted: list[_Charger], capacity: list[float], allocated: list[float]) -> None:
    """Raise one level `t` for all admitted chargers: each at `max(min, min(t, cap))`, stopping
    those on a resource when it is full. Event-driven (minimums, caps, full resources), so the
    work is O(n log n) in the chargers, not in the amperes."""
    base = list(allocated)  # used = base + rate * t
    rate = [0.0, 0.0, 0.0, 0.0]
    users: list[list[_Charger]] = [[], [], [], []]
    for entry in admitted:
        entry.state = 0
        for resource, weight in entry.resources:
            base[resource] += weight * entry.min_a
            users[resource].append(entry)
    joining = sorted(admitted, key=lambda entry: (entry.min_a, entry.order_id))
    capping = sorted(admitted, key=lambda entry: (entry.cap_a, entry.order_id))
    full = [False, False, False, False]
    next_join = next_cap = 0
    t = 0.0
    while True:
        # Chargers whose minimum the level reached start rising with it.
        while next_join < len(joining) and joining[next_join].min_a <= t + _EPSILON:
            entry = joining[next_join]
            next_join += 1
            if entry.state == 0:
                entry.state = 1
                for resource, weight in entry.resources:
                    base[resource] -= weight * entry.min_a
                    rate[resource] += weight
        # Chargers that reached their cap stop there.
        while next_cap < len(capping) and capping[next_cap].cap_a <= t + _EPSILON:
            entry = capping[next_cap]
            next_cap += 1
            if entry.state == 1:
                _stop(entry, max(entry.cap_a, entry.min_a), base, rate)
        # A full resource stops every charger on it (waiting ones stay at their minimum).
        for resource in range(4):
            limit = capacity[resource]
            if not full[resource] and rate[resource] > 0 and limit != math.inf and \
                    base[resource] + rate[resource] * t >= limit - _EPSILON * max(1.0, abs(limit)):
                full[resource] = True
                for entry in users[resource]:
                    if entry.state == 1:
                        _stop(entry, t, base, rate)
                    elif entry.state == 0:
                        entry.state, entry.limit_a = 2, entry.min_a
        # The next event.
        t_next = math.inf
        while next_join < len(joining) and joining[next_join].state != 0:
            next_join += 1
        if next_join < len(joining):
            t_next = joining[next_join].min_a
        while next_cap < len(capping) and capping[next_cap].state == 2:
            next_cap += 1
        if next_cap < len(capping) and capping[next_cap].state == 1:
            t_next = min(t_next, capping[next_cap].cap_a)
        for resource in range(4):
            if rate[resource] > 0 and not full[resource] and capacity[resource] != math.inf:
                t_next = min(t_next, (capacity[resource] - base[resource]) / rate[resource])
        if t_next == math.inf:
            break
        t = max(t, t_next)
    for entry in admitted:
        if entry.state == 0:
            entry.limit_a = entry.min_a
        elif entry.state == 1:  # cannot happen: every rising charger has a finite phase above it
            entry.limit_a = t
        for resource, weight in entry.resources:
            allocated[resource] += weight * entry.limit_a


def _stop(entry: _Charger, limit_a: float, base: list[float], rate: list[float]) -> None:
    """A rising charger stops at `limit_a`: it leaves the rate and its limit joins the base."""
    entry.state, entry.limit_a = 2, limit_a
    for resource, weight in entry.resources:
        rate[resource] -= weight
        base[resource] += weight * limit_a


def _priority(value: object) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


_VALID_WIRINGS = {1: frozenset({(0,), (1,), (2,)}),
                  3: frozenset({(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)})}


def _valid_wiring(wiring: object, length: int) -> bool:
    if type(wiring) is not tuple:
        if not isinstance(wiring, list):
            return False
        wiring = tuple(wiring)
    try:
        return wiring in _VALID_WIRINGS[length]  # (a bool member counts as 0 or 1, as Python does)
    except TypeError:  # unhashable members
        return False


def _grid_reading(grid_current_a: object, problems: list[str]) -> tuple[float, float, float] | None:
    if grid_current_a is None:
        return None
    if not isinstance(grid_current_a, tuple | list) or len(grid_current_a) != 3:
        problems.append(f"grid_current_a={grid_current_a!r}: not three currents, failsafe")
        return None
    values = [_number(value) for value in grid_current_a]
    if any(value is None for value in values):
        problems.append(f"grid_current_a={grid_current_a!r}: not three finite numbers, failsafe")
        return None
    return (values[0], values[1], values[2])  # type: ignore[return-value]


def _measured(measured: object, problems: list[str], owner: str) -> tuple[float, float, float]:
    if type(measured) is tuple and len(measured) == 3:
        first, second, third = measured
        if type(first) is float and type(second) is float and type(third) is float and \
                0.0 <= first < math.inf and 0.0 <= second < math.inf and 0.0 <= third < math.inf:
            return measured  # type: ignore[return-value]  # the usual case, checked fast
    if not isinstance(measured, tuple | list) or len(measured) != 3:
        problems.append(f"{owner} measured_current_a={measured!r}: not three currents, counted as 0")
        return (0.0, 0.0, 0.0)
    values = []
    for value in measured:
        number = _number(value)
        if number is None or number < 0:
            problems.append(f"{owner} measured_current_a={measured!r}: counted as 0 where not a number >= 0")
            number = 0.0
        values.append(number)
    return (values[0], values[1], values[2])
