"""The car on the cable and what a charger offers it: pure (stdlib only), in A per phase.

A charger offers min(its maximum current, its maximum power, the composite profile limit);
on AC a limit under 6 A cannot be signalled (IEC 61851 pilot), so it offers 0 and pauses. The
car takes min(offered, what it can take now); a full car takes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

AC_MINIMUM_CURRENT_A = 6.0
TAPER_FLOOR = 0.1


@dataclass
class Car:
    """What the car still wants and how hard it can pull (per phase, or total power). Above
    `taper_from` of the energy wanted it tapers linearly to 10 % of its maximum, as a battery
    near full does; at the energy wanted it stops."""

    energy_wanted_wh: float
    max_current_a: float | None = None
    max_power_w: float | None = None
    taper_from: float | None = 0.8

    def fraction_of_max(self, delivered_wh: float) -> float:
        if delivered_wh >= self.energy_wanted_wh:
            return 0.0
        if self.taper_from is None or self.taper_from >= 1:
            return 1.0
        done = delivered_wh / self.energy_wanted_wh
        if done <= self.taper_from:
            return 1.0
        return max(TAPER_FLOOR, 1.0 - (1.0 - TAPER_FLOOR) * (done - self.taper_from) / (1.0 - self.taper_from))

    def wants_current_a(self, delivered_wh: float, *, voltage_v: float, phase_count: int) -> float:
        """A per phase the car would take now if offered without limit."""
        wants_a = float("inf")
        if self.max_current_a is not None:
            wants_a = min(wants_a, self.max_current_a)
        if self.max_power_w is not None:
            wants_a = min(wants_a, self.max_power_w / (voltage_v * phase_count))
        fraction = self.fraction_of_max(delivered_wh)
        return wants_a * fraction if fraction > 0 else 0.0  # inf * 0 would be nan


def offered_current_a(
    limit_a: float | None, *, max_current_a: float, max_power_w: float, voltage_v: float, phase_count: int, ac: bool
) -> float:
    """What the charger signals to the car, A per phase: 0 or, on AC, at least 6 A."""
    offered_a = min(max_current_a, max_power_w / (voltage_v * phase_count))
    if limit_a is not None:
        offered_a = min(offered_a, limit_a)
    if ac and offered_a < AC_MINIMUM_CURRENT_A:
        return 0.0
    return max(offered_a, 0.0)


def charging_state(offered_a: float, wants_a: float) -> tuple[float, str]:
    """(draw A per phase, connector status) in a running transaction."""
    if offered_a <= 0:
        return 0.0, "SuspendedEVSE"
    if wants_a <= 0:
        return 0.0, "SuspendedEV"
    return min(offered_a, wants_a), "Charging"


__all__ = ["AC_MINIMUM_CURRENT_A", "Car", "charging_state", "offered_current_a"]
