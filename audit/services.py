"""Writing the audit log: every change by a person or an API client, every action sent to a
charger, every login attempt. Callers pass who (a Principal), what, and before/after."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.db import connection
from django.utils import timezone

from accounts.roles import Principal
from audit.models import AuditEntry

logger = logging.getLogger(__name__)


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    """Only the fields that differ, so an entry reads as what changed (both None: nothing did)."""
    if before is None or after is None:
        return before, after
    keys = [key for key in after if before.get(key) != after.get(key)]
    keys += [key for key in before if key not in after]
    if not keys:
        return None, None
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


def record(
    principal: Principal | None,
    action: str,
    target: str = "",
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: str = "",
    address: str | None = None,
) -> AuditEntry:
    entry = AuditEntry.objects.create(
        at=timezone.now(),
        actor=principal.label if principal else "anonymous",
        actor_kind=principal.kind if principal else "anonymous",
        address=(address if address is not None else principal.address if principal else "")[:64],
        action=action,
        target=target[:255],
        before=before,
        after=after,
        outcome=outcome[:255],
    )
    logger.info(
        "audit action=%s target=%s actor=%s address=%s outcome=%s",
        action,
        target,
        entry.actor,
        entry.address,
        outcome or "-",
    )
    return entry


arecord = database_sync_to_async(record)


def prune(retention_days: float, now=None) -> int:
    """The only way entries leave the log: older than the retention."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEntry._meta.db_table} WHERE at < %s", [cutoff])
        return cursor.rowcount
