"""How many charger sockets this process takes, per client address and in all. Pure.

A socket counts from the moment its handshake starts until it is gone, so a client that opens
many sockets (under one id or thousands) is held to its address's share however quickly it
opens them, and the process never takes more sockets than it has file descriptors for. A
refused socket gets a clean HTTP 503 with Retry-After (the caller's job); the delay is jittered
so the retries of a storm do not come back in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # "address_limit" | "capacity"
    open_count: int  # sockets already counted against the limit that refused
    limit: int


class ConnectionLimits:
    def __init__(self, *, max_per_address: int, max_total: int):
        if max_per_address < 1 or max_total < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_per_address = max_per_address
        self.max_total = max_total
        self._open_by_address: dict[str, int] = {}
        self.total = 0

    def open_count(self, address: str) -> int:
        return self._open_by_address.get(address, 0)

    def try_open(self, address: str) -> Refusal | None:
        """Count one more socket from this address, or say why not (nothing is counted then)."""
        current = self._open_by_address.get(address, 0)
        if current >= self.max_per_address:
            return Refusal("address_limit", current, self.max_per_address)
        if self.total >= self.max_total:
            return Refusal("capacity", self.total, self.max_total)
        self._open_by_address[address] = current + 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        """One socket counted by try_open is gone. Releasing more than was opened is ignored."""
        current = self._open_by_address.get(address, 0)
        if current <= 0:
            return
        if current == 1:
            del self._open_by_address[address]
        else:
            self._open_by_address[address] = current - 1
        self.total -= 1


# File descriptors kept for everything that is not a charger socket or its CSMS leg: the
# database, the log, Redis, the web page's HTTP connections, the meter's Modbus socket.
RESERVED_FILES = 256


def charger_capacity(open_files_limit: int) -> int:
    """Chargers one process can hold with this many file descriptors (each takes two: its own
    socket and its CSMS leg). A negative limit means unlimited."""
    if open_files_limit < 0:
        return 1_000_000
    return max(1, (open_files_limit - RESERVED_FILES) // 2)


def retry_after_s(base_s: int, rng: random.Random) -> int:
    """Seconds for Retry-After: base_s plus up to base_s again at random."""
    return base_s + rng.randint(0, base_s)
