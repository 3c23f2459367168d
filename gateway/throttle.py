"""How fast one charger may send: a token bucket over frames and bytes.

A charger that sends faster than any real charger does (a flood of CALLs without waiting for
answers, megabytes of garbage) must not take the event loop from the others. The server stops
reading that charger's socket for the time its budget needs to refill (TCP back-pressure), so
nothing queues up in LinkRay's memory either.

Pure: stdlib only; `now` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameBudgetConfig:
    frames_per_s: float = 50.0  # 0: no frame limit
    burst_frames: float = 500.0
    bytes_per_s: float = 256 * 1024.0  # 0: no byte limit
    burst_bytes: float = 2 * 1024 * 1024.0


class FrameBudget:
    """Two token buckets, frames and bytes, refilled continuously up to their bursts."""

    __slots__ = ("config", "_frames", "_bytes", "_at")

    def __init__(self, config: FrameBudgetConfig, now: float):
        self.config = config
        self._frames = config.burst_frames
        self._bytes = config.burst_bytes
        self._at = now

    def spend(self, size_bytes: int, now: float) -> float:
        """Take one frame of `size_bytes`; returns how long to stop reading (0.0: go on)."""
        config = self.config
        elapsed = now - self._at
        if elapsed > 0:
            self._at = now
            self._frames = min(config.burst_frames, self._frames + elapsed * config.frames_per_s)
            self._bytes = min(config.burst_bytes, self._bytes + elapsed * config.bytes_per_s)
        wait_s = 0.0
        if config.frames_per_s > 0:
            self._frames -= 1
            if self._frames < 0:
                wait_s = -self._frames / config.frames_per_s
        if config.bytes_per_s > 0:
            self._bytes -= size_bytes
            if self._bytes < 0:
                wait_s = max(wait_s, -self._bytes / config.bytes_per_s)
        return wait_s
