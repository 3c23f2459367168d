"""Allocation time of `balancing.allocation.allocate` for 10, 100, 1,000 and 10,000 chargers.

    .venv/bin/python bench/balancing.py [--repeats 200] [--sizes 10,100,1000,10000]

A realistic, deterministic mixed fleet (1-phase AC on every phase, rotated 3-phase AC, DC in W;
three priorities; some lending, some CSMS caps, some idle, some not controllable) on a site whose
fuse is scaled so that some chargers are paused and others are capped: every branch of the
algorithm runs. Each size is timed `repeats` times (fewer for 10,000 so the script stays under a
minute); the table shows the median and the 99th percentile. Target: 1,000 chargers under 5 ms
(median). Pure CPU: no I/O, no Django. The closed-loop reaction bench (load step to all new limits
acknowledged) needs the control loop and lives with it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from balancing.allocation import ChargerInput, SiteLimits, allocate  # noqa: E402

TARGET_SIZE = 1_000
TARGET_S = 0.005
NOW_S = 100_000.0


def fleet(size: int, seed: int = 8) -> list[ChargerInput]:
    rng = random.Random(seed)
    chargers = []
    for index in range(size):
        kind = rng.choice(["ac1", "ac3", "ac3", "dc"])
        wiring = (rng.randrange(3),) if kind == "ac1" else tuple(rng.sample(range(3), 3)) if kind == "ac3" else (0, 1, 2)
        limit_a = rng.choice([None, 6.0, 16.0, 32.0])
        draw_a = 0.0 if limit_a is None else rng.uniform(0.0, limit_a)
        measured = [0.0, 0.0, 0.0]
        for phase in wiring:
            measured[phase] = draw_a
        chargers.append(ChargerInput(
            charge_box_id=f"CP{index:05d}",
            kind=kind,
            wiring=wiring,
            max_current_a=rng.choice([16.0, 32.0, None]) if kind != "dc" else None,
            max_power_w=rng.choice([50_000.0, 150_000.0]) if kind == "dc" else None,
            priority=rng.choice([0, 0, 0, 1, 2]),
            controllable=rng.random() > 0.03,
            wants_current=rng.random() > 0.15,
            suspended_by_ev=rng.random() < 0.05,
            measured_current_a=(measured[0], measured[1], measured[2]),
            limit_a=limit_a,
            csms_cap_a=rng.choice([None, None, None, 10.0, 20.0]),
            charging_since_s=rng.choice([None, rng.uniform(0, NOW_S)]),
            paused_since_s=rng.choice([None, rng.uniform(0, NOW_S)]),
            limit_since_s=rng.uniform(0, NOW_S),
        ))
    return chargers


def site_for(size: int) -> SiteLimits:
    # About 10 A per charger per phase: not everyone gets their maximum, some are paused.
    return SiteLimits(grid_limit_a=max(63.0, 10.0 * size), margin_a=2.0, grid_limit_kw=6.0 * size + 40)


def time_allocation(size: int, repeats: int) -> list[float]:
    chargers = fleet(size)
    site = site_for(size)
    grid = (7.0 * size + 20.0, 6.0 * size + 15.0, 6.5 * size + 10.0)
    allocate(site, grid, chargers, now_s=NOW_S)  # warm up
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        allocate(site, grid, chargers, now_s=NOW_S)
        durations.append(time.perf_counter() - started)
    return durations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    print(f"allocate(): median and p99 over repeats; target: {TARGET_SIZE:,} chargers under {TARGET_S * 1000:.0f} ms")
    print(f"{'chargers':>9} {'repeats':>8} {'median ms':>10} {'p99 ms':>9} {'per charger us':>15}  target")
    missed = False
    for size in sizes:
        repeats = max(5, min(arguments.repeats, int(arguments.repeats * 1_000 / max(size, 1)))) if size > 1_000 else arguments.repeats
        durations = time_allocation(size, repeats)
        median_s = statistics.median(durations)
        verdict = ""
        if size == TARGET_SIZE:
            verdict = "PASS" if median_s < TARGET_S else "MISS"
            missed = missed or verdict == "MISS"
        print(f"{size:>9,} {repeats:>8} {median_s * 1000:>10.2f} {percentile(durations, 0.99) * 1000:>9.2f}"
              f" {median_s / size * 1e6:>15.2f}  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
