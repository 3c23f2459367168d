"""Reads of gateway data for other apps (balancing, meters' simulator, pages)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from django.core.paginator import Paginator
from django.db.models import Count

from gateway.models import AuthorizationCacheEntry, Charger, JournalEntry, QueuedMessage, TransactionRecord
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
    from balancing.selectors import charger_balancing_view  # balancing builds on the gateway, not the reverse

    detail["balancing"] = charger_balancing_view(charger)
    detail["allocation"] = detail["balancing"]["allocation"]  # the decision and its reason, at the top too
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
        "csms_refused": (charger.state or {}).get("csms_refused", ""),
    }


# --- Pages -----------------------------------------------------------------------------
# What the operator's pages show, read in a few queries per page. Durations are computed
# against `now`, passed in by the view, so a refreshed partial shows a ticking outage.

JOURNAL_PAGE_ENTRIES = 50
QUEUE_PREVIEW_ROWS = 200
RECENT_TRANSACTIONS = 20
RAW_PREVIEW_CHARS = 160


def duration_text(seconds: float | None) -> str:
    """`3 min 12 s`, `2 h 5 min`, `1 d 3 h`: the two largest units, for a person to read."""
    if seconds is None:
        return ""
    remaining = max(0, int(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count or parts:
            parts.append(f"{count} {unit}")
    return " ".join(part for part in parts[:2] if not part.startswith("0 ")) or "0 s"


def dashboard(now: datetime) -> dict:
    """The site summary and one row per charger, for the live dashboard."""
    queued = queued_counts()
    rows = [_page_row(charger, queued.get(charger.charge_box_id, 0), now) for charger in Charger.objects.all()]
    return {
        "summary": {
            "chargers": len(rows),
            "chargers_connected": sum(1 for row in rows if row["charger_connected"]),
            "csms_down": sum(1 for row in rows if row["csms_state"] == Charger.CsmsState.DOWN),
            "queued_messages": sum(queued.values()),
        },
        "chargers": rows,
    }


def charger_page(charge_box_id: str, now: datetime) -> dict | None:
    """Everything the charger page shows, or None for an unknown charge box id."""
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    if charger is None:
        return None
    queued = QueuedMessage.objects.filter(charge_box_id=charge_box_id)
    row = _page_row(charger, queued.count(), now)
    state = _charger_state(charger)
    transactions = TransactionRecord.objects.filter(charger=charger)
    return {
        **row,
        "charger": charger,
        "serial_number": charger.serial_number,
        "boot": state.boot if state else {},
        "boot_status": state.boot_status if state else "",
        "last_boot_at": state.last_boot_at if state else None,
        "heartbeat_interval_s": state.heartbeat_interval_s if state else None,
        "charger_connected_at": charger.charger_connected_at,
        "charger_disconnected_at": charger.charger_disconnected_at,
        "csms_profiles": [asdict(profile) for profile in state.csms_profiles] if state else [],
        "open_transactions": list(transactions.filter(stopped_at__isnull=True).order_by("connector_id", "transaction_id")),
        "recent_transactions": list(transactions.filter(stopped_at__isnull=False).order_by("-stopped_at")[:RECENT_TRANSACTIONS]),
        "queue": [_queued_row(message) for message in queued.order_by("id")[:QUEUE_PREVIEW_ROWS]],
        "journal": [
            _journal_row(entry)
            for entry in JournalEntry.objects.filter(charge_box_id=charge_box_id).order_by("-id")[:JOURNAL_PAGE_ENTRIES]
        ],
    }


def queue_page(charge_box_id: str, page_number: str | int | None, per_page: int = QUEUE_PREVIEW_ROWS) -> dict | None:
    """One page of a charger's replay queue, oldest first (the order replay sends them)."""
    charger = Charger.objects.filter(charge_box_id=charge_box_id).only("state").first()
    if charger is None:
        return None
    paginator = Paginator(QueuedMessage.objects.filter(charge_box_id=charge_box_id).order_by("id"), per_page)
    page = paginator.get_page(page_number)
    return {
        "charge_box_id": charge_box_id,
        # Why the queue cannot be delivered, when the CSMS refused this charger ("HTTP 401").
        "csms_refused": (charger.state or {}).get("csms_refused", ""),
        "count": paginator.count,
        "page": page,
        "rows": [_queued_row(message) for message in page.object_list],
    }


def authorization_cache(page_number: str | int | None, per_page: int = 100) -> dict:
    paginator = Paginator(AuthorizationCacheEntry.objects.order_by("id_tag"), per_page)
    page = paginator.get_page(page_number)
    return {"count": paginator.count, "page": page, "entries": list(page.object_list)}


def _charger_state(charger: Charger) -> ChargerState | None:
    if not charger.state:
        return None
    return ChargerState.from_dict({"charge_box_id": charger.charge_box_id, **charger.state})


def _page_row(charger: Charger, queued: int, now: datetime) -> dict:
    down_for_s = (now - charger.csms_down_since).total_seconds() if charger.csms_down_since else None
    state = _charger_state(charger)
    connectors = [] if state is None else [_connector_row(state.connectors[key], state, now) for key in sorted(state.connectors)]
    return {
        **_summary(charger, queued),
        "csms_state_label": Charger.CsmsState(charger.csms_state).label
        if charger.csms_state in Charger.CsmsState.values
        else charger.csms_state,
        "csms_down_for_s": down_for_s,
        "csms_down_for": duration_text(down_for_s),
        "upstream_url": charger.upstream_url,
        "connectors": connectors,
        "open_transaction_count": len(state.transactions) if state else 0,
    }


def running_session(transaction, energy_now_wh: float | None, now: datetime) -> dict:
    """The running session as the operator wants it: who, for how long, how much energy since
    it started (the meter now minus its meterStart, not the meter's register)."""
    duration_s = (now - transaction.started_at).total_seconds() if transaction.started_at else None
    energy_wh = None
    if energy_now_wh is not None:
        energy_wh = energy_now_wh - transaction.meter_start_wh
        if energy_wh < 0:
            energy_wh = None  # a meter that went backwards (replaced, or a bad reading): unknown
    return {
        "transaction_id": transaction.transaction_id,
        "csms_transaction_id": transaction.csms_transaction_id,
        "id_tag": transaction.id_tag,
        "id_tag_status": transaction.id_tag_status,
        "started_at": transaction.started_at,
        "duration_s": duration_s,
        "duration": duration_text(duration_s),
        "energy_wh": energy_wh,
        "energy_kwh": None if energy_wh is None else energy_wh / 1000,
    }


def _connector_row(connector, state: ChargerState, now: datetime) -> dict:
    meter = connector.meter
    sessions = [
        running_session(transaction, meter.energy_wh, now)
        for transaction in sorted(state.transactions.values(), key=lambda tx: tx.transaction_id)
        if transaction.connector_id == connector.connector_id
    ]
    return {
        "sessions": sessions,
        "connector_id": connector.connector_id,
        "status": connector.status,
        "error_code": connector.error_code,
        "info": connector.info,
        "vendor_error_code": connector.vendor_error_code,
        "status_at": connector.status_at,
        "current_a": asdict(meter.current_a),
        "has_current": any(value is not None for value in meter.current_a.as_tuple()),
        "voltage_v": asdict(meter.voltage_v),
        "has_voltage": any(value is not None for value in meter.voltage_v.as_tuple()),
        "power_w": meter.power_w,
        "power_kw": None if meter.power_w is None else meter.power_w / 1000,
        "energy_wh": meter.energy_wh,
        "energy_kwh": None if meter.energy_wh is None else meter.energy_wh / 1000,
        "offered_current_a": meter.offered_current_a,
        "soc_percent": meter.soc_percent,
        "measured_at": meter.measured_at,
    }


def _queued_row(message: QueuedMessage) -> dict:
    return {
        "id": message.pk,
        "received_at": message.received_at,
        "action": message.action,
        "unique_id": message.unique_id,
        "attempts": message.attempts,
        "local_transaction_id": message.local_transaction_id,
        "raw_preview": _preview(message.raw),
        "raw_truncated": len(message.raw) > RAW_PREVIEW_CHARS,
    }


def _journal_row(entry: JournalEntry) -> dict:
    return {
        "id": entry.pk,
        "at": entry.at,
        "direction": entry.direction,
        "direction_label": entry.direction.replace(">", " → "),
        "message_type": entry.message_type,
        "action": entry.action,
        "unique_id": entry.unique_id,
        "raw_preview": _preview(entry.raw),
        "raw_truncated": len(entry.raw) > RAW_PREVIEW_CHARS,
    }


def _preview(raw: str) -> str:
    return raw if len(raw) <= RAW_PREVIEW_CHARS else raw[: RAW_PREVIEW_CHARS - 1] + "…"


# --- Finished sessions -------------------------------------------------------------------

SESSIONS_PER_PAGE = 100


def finished_sessions(
    *,
    charge_box_id: str = "",
    id_tag: str = "",
    started_from: datetime | None = None,
    started_before: datetime | None = None,
):
    """Finished transactions, newest first, narrowed by the filters that are set (a queryset:
    the page paginates it, the CSV export streams it)."""
    rows = TransactionRecord.objects.filter(stopped_at__isnull=False).select_related("charger")
    if charge_box_id:
        rows = rows.filter(charger__charge_box_id=charge_box_id)
    if id_tag:
        rows = rows.filter(id_tag__iexact=id_tag)
    if started_from is not None:
        rows = rows.filter(started_at__gte=started_from)
    if started_before is not None:
        rows = rows.filter(started_at__lt=started_before)
    return rows.order_by("-stopped_at", "-pk")


def session_row(record: TransactionRecord) -> dict:
    duration_s = None
    if record.started_at and record.stopped_at:
        duration_s = max(0.0, (record.stopped_at - record.started_at).total_seconds())
    energy_wh = None
    if record.meter_stop_wh is not None and record.meter_stop_wh >= record.meter_start_wh:
        energy_wh = record.meter_stop_wh - record.meter_start_wh
    return {
        "charge_box_id": record.charger.charge_box_id,
        "connector_id": record.connector_id,
        "transaction_id": record.transaction_id,
        "csms_transaction_id": record.csms_transaction_id,
        "id_tag": record.id_tag,
        "id_tag_status": record.id_tag_status,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
        "duration_s": duration_s,
        "duration": duration_text(duration_s),
        "meter_start_wh": record.meter_start_wh,
        "meter_stop_wh": record.meter_stop_wh,
        "energy_wh": energy_wh,
        "energy_kwh": None if energy_wh is None else energy_wh / 1000,
        "stop_reason": record.stop_reason,
        "started_offline": record.started_offline,
    }


def sessions_page(filters: dict, page_number: str | int | None, per_page: int = SESSIONS_PER_PAGE) -> dict:
    paginator = Paginator(finished_sessions(**filters), per_page)
    page = paginator.get_page(page_number)
    return {
        "count": paginator.count,
        "page": page,
        "rows": [session_row(record) for record in page.object_list],
        "charge_box_ids": list(Charger.objects.order_by("charge_box_id").values_list("charge_box_id", flat=True)),
    }
