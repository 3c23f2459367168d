"""Retention of the audit log: the only way entries leave it. Embedded, `manage.py serve` runs
`run_audit_pruning` hourly; in scale-out, Celery beat runs `audit.prune` (audit.tasks)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from audit.services import prune

logger = logging.getLogger(__name__)
PRUNE_INTERVAL_S = 3600


def prune_expired(now: datetime) -> int:
    removed = prune(settings.LINKRAY_AUDIT_RETENTION_DAYS, now)
    if removed:
        logger.info("audit_pruned removed=%d retention_days=%s", removed, settings.LINKRAY_AUDIT_RETENTION_DAYS)
    return removed


async def run_audit_pruning() -> None:
    while True:
        try:
            await database_sync_to_async(prune_expired)(timezone.now())
        except Exception:
            logger.exception("audit_prune_failed")
        await asyncio.sleep(PRUNE_INTERVAL_S)
