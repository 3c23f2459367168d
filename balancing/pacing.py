"""What to send now: reductions at once, increases paced, small changes not at all.

Pure and deterministic: stdlib only, no Django, no I/O, no clock (`now_s` is an argument,
monotonic seconds).

Public API
----------
- `SentLimit(limit_a, sent_at_s)`: the last limit LinkRay sent a charger (and the charger
  accepted), and when.
- `plan_sends(allocation, sent, *, now_s, increase_interval_s=5.0, deadband_a=1.0, force=())
  -> list[ChargerAllocation]`: the allocations to send now, reductions first (send them first and
  the increases after, so the site never briefly holds both the old and the new load).

Rules, per charger:
- `NOT_CONTROLLABLE`: never sent (not even when forced).
- In `force` (reconnect, reboot, new transaction) or never sent before: sent.
- Unchanged: not sent.
- A change under `deadband_a` is not sent, except a change to or from 0 (pause, resume). A small
  reduction is only skipped while the skipped excess stays within the allocation's headroom
  (`standby_left_a`, else `capacity_left_a`; summed over every skipped charger, so even if they
  all load the same phase); the rest are sent. In failsafe (no headroom) every reduction is sent.
- A reduction goes out at once.
- An increase goes out at most once per `increase_interval_s` after the charger's last send; until
  then it waits (the next cycle's allocation will ask again).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from balancing.allocation import Allocation, ChargerAllocation, Reason

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class SentLimit:
    limit_a: float
    sent_at_s: float


def plan_sends(
    allocation: Allocation,
    sent: Mapping[str, SentLimit],
    *,
    now_s: float,
    increase_interval_s: float = 5.0,
    deadband_a: float = 1.0,
    force: Collection[str] = (),
) -> list[ChargerAllocation]:
    forced = set(force)
    reductions: list[ChargerAllocation] = []
    increases: list[ChargerAllocation] = []
    small_reductions: list[tuple[float, int, ChargerAllocation]] = []
    for position, charger in enumerate(allocation.chargers):
        if charger.reason == Reason.NOT_CONTROLLABLE:
            continue
        previous = sent.get(charger.charge_box_id)
        if charger.charge_box_id in forced or previous is None:
            target = reductions if previous is not None and charger.limit_a < previous.limit_a else increases
            target.append(charger)
            continue
        change_a = charger.limit_a - previous.limit_a
        if abs(change_a) <= _EPSILON:
            continue
        crosses_zero = charger.limit_a == 0.0 or previous.limit_a == 0.0
        if change_a < 0:
            if abs(change_a) < deadband_a and not crosses_zero:
                small_reductions.append((-change_a, position, charger))
            else:
                reductions.append(charger)
            continue
        if change_a < deadband_a and not crosses_zero:
            continue
        if now_s - previous.sent_at_s >= increase_interval_s:
            increases.append(charger)

    # Small reductions may wait while what they leave above their allocation fits in the headroom.
    headroom_a = allocation.standby_left_a if allocation.standby_left_a is not None else allocation.capacity_left_a
    skipped_a = 0.0
    for excess_a, _, charger in sorted(small_reductions, key=lambda item: (item[0], item[1])):
        if headroom_a is not None and skipped_a + excess_a <= headroom_a + _EPSILON:
            skipped_a += excess_a
        else:
            reductions.append(charger)

    order = {charger.charge_box_id: position for position, charger in enumerate(allocation.chargers)}
    reductions.sort(key=lambda charger: order[charger.charge_box_id])
    return reductions + increases
