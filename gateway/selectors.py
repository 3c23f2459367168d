"""Reads of gateway data for other apps (balancing, meters' simulator, pages)."""

from __future__ import annotations

from django.db.models import Count

from gateway.models import Charger, QueuedMessage, TransactionRecord
from gateway.state import ChargerState, Phases


def connected_charger_states() -> list[ChargerState]:
    """The live model of every connected charger, as last flushed (at most a second old)."""
    return [
        ChargerState.from_dict(charger.state)
        for charger in Charger.objects.filter(charger_connected=True).exclude(state={})
    ]


def metered_charging_current_a() -> Phases:
    """Sum of the per-phase currents the connected chargers last reported."""
    total = [0.0, 0.0, 0.0]
    for state in connected_charger_states():
        for connector_id, connector in state.connectors.items():
            if connector_id == 0 and len(state.connectors) > 1:
                continue  # connector 0 is the whole charger: already counted per connector
            for index, value in enumerate(connector.meter.current_a.as_tuple()):
                if value is not None:
                    total[index] += value
    return Phases(*total)


def charger_summaries() -> list[dict]:
    queued = queued_counts()
    return [_summary(charger, queued.get(charger.charge_box_id, 0)) for charger in Charger.objects.all()]


def charger_detail(charge_box_id: str) -> dict | None:
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    if charger is None:
        return None
    detail = _summary(charger, QueuedMessage.objects.filter(charge_box_id=charge_box_id).count())
    detail["state"] = charger.state
    detail["open_transactions"] = list(
        TransactionRecord.objects.filter(charger=charger, stopped_at__isnull=True).values(
            "connector_id", "transaction_id", "csms_transaction_id", "id_tag", "id_tag_status", "started_at", "started_offline"
        )
    )
    return detail


def queued_counts() -> dict[str, int]:
    rows = QueuedMessage.objects.values("charge_box_id").annotate(count=Count("id"))
    return {row["charge_box_id"]: row["count"] for row in rows}


def queued_messages(charge_box_id: str, limit: int = 200) -> list[QueuedMessage]:
    return list(QueuedMessage.objects.filter(charge_box_id=charge_box_id).order_by("id")[:limit])


def _summary(charger: Charger, queued: int) -> dict:
    return {
        "charge_box_id": charger.charge_box_id,
        "charger_connected": charger.charger_connected,
        "csms_state": charger.csms_state,
        "csms_down_since": charger.csms_down_since,
        "queued_messages": queued,
        "vendor": charger.vendor,
        "model": charger.model,
        "firmware_version": charger.firmware_version,
        "last_seen_at": charger.last_seen_at,
        "balancing_enabled": charger.balancing_enabled,
    }
