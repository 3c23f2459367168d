"""Durable storage for offline continuity: the replay queue, the transaction id map and the
authorization cache. Synchronous; the event loop reaches it through database_sync_to_async."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F

from gateway import observe
from gateway.models import AuthorizationCacheEntry, Charger, GatewaySettings, QueuedMessage, TransactionRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    unique_id: str
    action: str
    raw: str
    received_at: datetime
    local_transaction_id: int | None
    attempts: int


def store_message(
    charge_box_id: str,
    unique_id: str,
    action: str,
    raw: str | bytes,
    received_at: datetime,
    *,
    local_transaction_base: int,
    keep: bool = True,
) -> StoredMessage:
    """Keep one charger CALL for replay; a StartTransaction also gets its local transaction id.

    Committed (and, on SQLite, fsynced) before this returns: the caller answers the charger
    only afterwards, so a crash can never lose a message the charger thinks was delivered.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    with transaction.atomic():
        message = QueuedMessage.objects.create(
            charge_box_id=charge_box_id, unique_id=unique_id, action=action, raw=raw, received_at=received_at
        )
        if action == "StartTransaction":
            # Derived from the queue's own sequence: unique and durable without another counter.
            message.local_transaction_id = local_transaction_base + message.pk
            message.save(update_fields=["local_transaction_id"])
            _record_offline_start(charge_box_id, message.local_transaction_id, raw, received_at)
        if not keep:
            # No CSMS to hand it to (standalone site): only the transaction id was wanted.
            # The row's id is never reused (AUTOINCREMENT / sequence), so neither is the local id.
            message.delete()
    return _stored(message)


def _record_offline_start(charge_box_id: str, local_transaction_id: int, raw: str, received_at: datetime) -> None:
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    if charger is None:
        return
    try:
        payload = json.loads(raw)[3]
    except (ValueError, IndexError, KeyError, TypeError):
        payload = {}
    meter_start = payload.get("meterStart") if isinstance(payload, dict) else None
    connector_id = payload.get("connectorId") if isinstance(payload, dict) else None
    TransactionRecord.objects.update_or_create(
        charger=charger,
        transaction_id=local_transaction_id,
        defaults={
            "connector_id": connector_id if isinstance(connector_id, int) and connector_id >= 0 else 0,
            "id_tag": str(payload.get("idTag", ""))[:20] if isinstance(payload, dict) else "",
            "meter_start_wh": meter_start if isinstance(meter_start, int) else 0,
            "started_at": received_at,
            "started_offline": True,
        },
    )


def load_backlog(charge_box_id: str, limit: int = 200) -> list[StoredMessage]:
    return [_stored(message) for message in QueuedMessage.objects.filter(charge_box_id=charge_box_id).order_by("id")[:limit]]


def offline_start(charge_box_id: str, now: datetime) -> tuple[int, dict[int, int]]:
    """What a new session needs: how many messages wait for replay, and the transaction id map."""
    return QueuedMessage.objects.filter(charge_box_id=charge_box_id).count(), transaction_map(charge_box_id, now)


def complete_message(
    message_id: int,
    *,
    charge_box_id: str,
    local_transaction_id: int | None = None,
    csms_transaction_id: int | None = None,
    id_tag_status: str | None = None,
) -> None:
    """The CSMS answered a replayed message: it is never sent again."""
    with transaction.atomic():
        QueuedMessage.objects.filter(pk=message_id).delete()
        if local_transaction_id is not None and csms_transaction_id is not None:
            update = {"csms_transaction_id": csms_transaction_id}
            if id_tag_status:
                update["id_tag_status"] = id_tag_status[:20]
            TransactionRecord.objects.filter(
                charger__charge_box_id=charge_box_id, transaction_id=local_transaction_id
            ).update(**update)


def count_attempt(message_id: int) -> None:
    """A replay of this message got no answer; it stays queued and is sent again."""
    QueuedMessage.objects.filter(pk=message_id).update(attempts=F("attempts") + 1)


def transaction_map(charge_box_id: str, now: datetime) -> dict[int, int]:
    """local id -> CSMS id for this charger's recent offline-started transactions."""
    rows = TransactionRecord.objects.filter(
        charger__charge_box_id=charge_box_id,
        started_offline=True,
        csms_transaction_id__isnull=False,
        started_at__gte=now - timedelta(days=30),
    ).values_list("transaction_id", "csms_transaction_id")
    return dict(rows)


def offline_policy() -> str:
    return GatewaySettings.load().offline_authorization


def cached_authorization(id_tag: str) -> tuple[str | None, datetime | None]:
    entry = AuthorizationCacheEntry.objects.filter(id_tag=id_tag).first()
    if entry is None:
        return None, None
    return entry.status, entry.expiry_date


def apply_effect(charge_box_id: str, effect: observe.Effect) -> None:
    if isinstance(effect, observe.AuthorizationSeen):
        AuthorizationCacheEntry.objects.update_or_create(
            id_tag=effect.id_tag[:20],
            defaults={
                "status": effect.status[:20],
                "expiry_date": effect.expiry_date,
                "parent_id_tag": effect.parent_id_tag[:20],
            },
        )


def _stored(message: QueuedMessage) -> StoredMessage:
    return StoredMessage(
        id=message.pk or 0,
        unique_id=message.unique_id,
        action=message.action,
        raw=message.raw,
        received_at=message.received_at,
        local_transaction_id=message.local_transaction_id,
        attempts=message.attempts,
    )


@dataclass(frozen=True, slots=True)
class Orphan:
    charge_box_id: str
    upstream_url: str
    authorization: str
    served_by: str  # set when the row still says connected: the caller checks that process


def orphaned_backlogs(disconnected_before: datetime) -> list[Orphan]:
    """Chargers with messages waiting for the CSMS that left before the given time, or whose
    row still says connected (their process may have died; the caller checks)."""
    queued = list(QueuedMessage.objects.values_list("charge_box_id", flat=True).distinct())
    chargers = Charger.objects.filter(charge_box_id__in=queued).exclude(
        charger_connected=False, charger_disconnected_at__gt=disconnected_before
    )
    return [
        Orphan(c.charge_box_id, c.upstream_url, c.upstream_authorization, c.served_by if c.charger_connected else "")
        for c in chargers
    ]
