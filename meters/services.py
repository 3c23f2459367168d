"""Database writes for meters. Synchronous: the poller calls them through
database_sync_to_async, once per closed history bucket (every 10 s per meter), never per poll."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction

from meters.models import MeterHistory
from meters.readings import HistoryBucket, merge_summaries, retention_cutoff

logger = logging.getLogger(__name__)


def record_history_bucket(meter_id: int, bucket: HistoryBucket) -> None:
    """Store a closed bucket; merge it into a row another process already wrote for it."""
    summary = bucket.summary()
    for _ in range(2):
        try:
            with transaction.atomic():
                row = MeterHistory.objects.select_for_update().filter(meter_id=meter_id, start_at=bucket.start_at).first()
                if row is None:
                    MeterHistory.objects.create(meter_id=meter_id, start_at=bucket.start_at, samples=bucket.count, values=summary)
                else:
                    row.values = merge_summaries(row.values, summary)
                    row.samples += bucket.count
                    row.save(update_fields=["values", "samples"])
            return
        except IntegrityError:
            # Two processes created the same bucket at once (or the meter was deleted): once
            # more finds the other's row and merges; a deleted meter fails again and is dropped.
            continue
    logger.warning("meter_history_dropped meter=%s start_at=%s", meter_id, bucket.start_at.isoformat())


def prune_history(now: datetime, retention_h: float) -> int:
    deleted, _ = MeterHistory.objects.filter(start_at__lt=retention_cutoff(now, retention_h)).delete()
    if deleted:
        logger.info("meter_history_pruned deleted=%d", deleted)
    return deleted
