"""Scale-out: periodic gateway work run by Celery beat (the embedded default runs the same
functions as asyncio tasks inside `manage.py serve`)."""

from datetime import UTC, datetime

from celery import shared_task
from django.conf import settings

from gateway.journal import prune_journal


@shared_task(name="gateway.prune_journal")
def prune_journal_task() -> int:
    return prune_journal(datetime.now(UTC), settings.LINKRAY_JOURNAL_RETENTION_DAYS, settings.LINKRAY_JOURNAL_MAX_ROWS)
