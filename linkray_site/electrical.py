"""Electrical types shared by the gateway, the meters and balancing.

Pure: stdlib only; no Django, no I/O, no clock.

Public API
----------
- `Phases(l1, l2, l3)`: one value per site phase (`float | None`), `as_tuple()`.
- `SITE_PHASES = ("L1", "L2", "L3")`: the site's phase names, index 0..2.
- `CHARGER_KINDS = ("ac1", "ac3", "dc")`.
- `parse_wiring(phases: Sequence[str], kind: str) -> tuple[int, ...]`: the site phase index of the
  charger's L1[, L2, L3]. `ac1` takes exactly one phase, `ac3` three distinct ones, `dc` three
  distinct ones or none (meaning L1, L2, L3). Raises `ValueError` with a readable message.
- `amps_to_watts(current_a, phase_count, voltage_v) -> float`: per-phase current to total power.
- `watts_to_amps(power_w, phase_count, voltage_v) -> float`: total power to per-phase current.
- `to_site_phases(charger_phase_currents, wiring) -> tuple[float, float, float]`: a charger's own
  L1..L3 currents placed on the site's phases (`None` counts as 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SITE_PHASES = ("L1", "L2", "L3")
CHARGER_KINDS = ("ac1", "ac3", "dc")
DC_DEFAULT_WIRING = (0, 1, 2)


@dataclass(slots=True)
class Phases:
    l1: float | None = None
    l2: float | None = None
    l3: float | None = None

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        return (self.l1, self.l2, self.l3)


def parse_wiring(phases: Sequence[str], kind: str) -> tuple[int, ...]:
    """`["L2", "L3", "L1"]` for an `ac3` charger -> `(1, 2, 0)`: where its L1, L2, L3 are wired."""
    if kind not in CHARGER_KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(CHARGER_KINDS)}")
    if isinstance(phases, (str, bytes)) or not isinstance(phases, Sequence):
        raise ValueError(f"phases {phases!r}: expected a list of site phases such as [\"L1\", \"L2\", \"L3\"]")
    wiring = []
    for phase in phases:
        name = phase.strip().upper() if isinstance(phase, str) else phase
        if name not in SITE_PHASES:
            raise ValueError(f"phase {phase!r}: expected one of {', '.join(SITE_PHASES)}")
        wiring.append(SITE_PHASES.index(name))
    if kind == "dc" and not wiring:
        return DC_DEFAULT_WIRING
    expected = 1 if kind == "ac1" else 3
    if len(wiring) != expected:
        raise ValueError(f"a {kind} charger is wired to {expected} site phase{'s' if expected > 1 else ''}, got {len(wiring)}")
    if len(set(wiring)) != len(wiring):
        raise ValueError(f"phases {list(phases)!r}: each site phase may appear only once")
    return tuple(wiring)


def _check_conversion(phase_count: int, voltage_v: float) -> None:
    if phase_count not in (1, 2, 3):
        raise ValueError(f"phase_count {phase_count!r}: expected 1, 2 or 3")
    if not (isinstance(voltage_v, (int, float)) and math.isfinite(voltage_v) and voltage_v > 0):
        raise ValueError(f"voltage_v {voltage_v!r}: expected a positive number")


def amps_to_watts(current_a: float, phase_count: int, voltage_v: float) -> float:
    """Per-phase current on `phase_count` phases to total power at a nominal phase voltage."""
    _check_conversion(phase_count, voltage_v)
    return current_a * phase_count * voltage_v


def watts_to_amps(power_w: float, phase_count: int, voltage_v: float) -> float:
    """Total power spread evenly over `phase_count` phases to the per-phase current."""
    _check_conversion(phase_count, voltage_v)
    return power_w / (phase_count * voltage_v)


def to_site_phases(charger_phase_currents: Sequence[float | None], wiring: Sequence[int]) -> tuple[float, float, float]:
    """The charger's L1..L3 currents placed on the site phases its wiring names; extra charger
    phases beyond its wiring (a 1-phase charger reporting L2) are ignored."""
    site = [0.0, 0.0, 0.0]
    for current_a, site_phase in zip(charger_phase_currents, wiring):
        if current_a is not None:
            site[site_phase] += current_a
    return (site[0], site[1], site[2])
