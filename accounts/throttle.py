"""Login throttling rules, pure: failures per client address within a window, and how long
the next attempt must wait. `now` is a number of seconds (any monotonic-enough clock); the
adapter (accounts.login) keeps the failures in the cache and answers 429 while locked.

After `max_failures` failures within `window_s`, each further failure doubles the wait:
base_delay_s, 2x, 4x, ... capped at max_delay_s. A success clears the address."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    window_s: float = 900.0
    base_delay_s: float = 5.0
    max_delay_s: float = 900.0


def recent_failures(failures_at: tuple[float, ...], now: float, policy: ThrottlePolicy) -> tuple[float, ...]:
    """The failures still inside the window, oldest first."""
    return tuple(sorted(at for at in failures_at if now - policy.window_s < at <= now))


def after_failure(failures_at: tuple[float, ...], now: float, policy: ThrottlePolicy) -> tuple[float, ...]:
    # Keep a bounded history: enough to know the count that sets the delay.
    kept = recent_failures(failures_at, now, policy) + (now,)
    return kept[-(policy.max_failures + 16):]


def wait_s(failures_at: tuple[float, ...], now: float, policy: ThrottlePolicy) -> float:
    """Seconds before this address may try again; 0 when it may now."""
    failures = recent_failures(failures_at, now, policy)
    excess = len(failures) - policy.max_failures
    if excess < 0:
        return 0.0
    delay_s = min(policy.max_delay_s, policy.base_delay_s * (2 ** min(excess, 32)))
    return max(0.0, failures[-1] + delay_s - now)
