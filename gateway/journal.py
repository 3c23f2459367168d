"""The message journal: every frame, buffered in memory and written in batches.

Recording a frame is an append to a bounded deque (no I/O on the relay's path); the runtime
flushes the buffer to the database once a second. If the database falls behind for long
enough to fill the buffer, the oldest unwritten entries are dropped and counted, so memory
stays bounded and the relay never waits for the journal.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from gateway.models import JournalEntry
from linkray_site.metrics import FrameCounts

logger = logging.getLogger(__name__)

_MAX_RAW_CHARS = 1_000_000


class JournalBuffer:
    def __init__(self, max_entries: int):
        self._entries: deque[tuple] = deque(maxlen=max_entries)
        self._max_entries = max_entries
        self.dropped = 0
        # Every frame passes here once: the metrics' frame counter lives here too.
        self.frames = FrameCounts()

    def record(self, direction, charge_box_id, message_type, unique_id, action, raw) -> None:
        self.frames.count(direction, message_type, action)
        if len(self._entries) == self._max_entries:
            self.dropped += 1
        self._entries.append((time.time(), direction, charge_box_id, message_type, unique_id, action, raw))

    def take(self) -> list[tuple]:
        entries = list(self._entries)
        self._entries.clear()
        return entries

    def __len__(self) -> int:
        return len(self._entries)


def write_journal_entries(entries: list[tuple]) -> None:
    """Synchronous: runs in the database thread. One prepared INSERT for the whole batch; model
    instances and bulk_create cost several times more at thousands of frames a second."""
    rows = []
    adapt = connection.ops.adapt_datetimefield_value
    for at, direction, charge_box_id, message_type, unique_id, action, raw in entries:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
        if "\x00" in raw:
            raw = raw.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
        rows.append(
            (
                adapt(datetime.fromtimestamp(at, UTC)),
                charge_box_id,
                direction,
                message_type,
                (unique_id or "")[:36],
                (action or "")[:64],
                raw[:_MAX_RAW_CHARS],
            )
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {JournalEntry._meta.db_table} "
            "(at, charge_box_id, direction, message_type, unique_id, action, raw) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def prune_journal(now: datetime, retention_days: float, max_rows: int) -> int:
    """Delete entries older than the retention period and beyond the row cap."""
    deleted, _ = JournalEntry.objects.filter(at__lt=now - timedelta(days=retention_days)).delete()
    newest = JournalEntry.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is not None and newest > max_rows:
        extra, _ = JournalEntry.objects.filter(id__lte=newest - max_rows).delete()
        deleted += extra
    if deleted:
        logger.info("journal_pruned deleted=%d", deleted)
    return deleted
