"""Database writes for the gateway. Synchronous: callers on the event loop use
database_sync_to_async, and never per frame (the runtime batches)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from gateway import observe, offline_store
from gateway.models import Charger, GatewaySettings, TransactionRecord
from gateway.state import ChargerState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionDecision:
    accepted: bool
    reason: str = ""
    upstream_url: str = ""
    state: ChargerState | None = None


def admit_charger(
    charge_box_id: str, now: datetime, authorization: str | None = None, served_by: str = ""
) -> ConnectionDecision:
    """A charger opened its socket: known chargers are admitted, unknown ones per site policy."""
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    if charger is None:
        if not GatewaySettings.load().accept_unknown_chargers:
            return ConnectionDecision(False, "unknown charge box id and the site refuses unknown chargers")
        charger, _ = Charger.objects.get_or_create(charge_box_id=charge_box_id)
    state = ChargerState.from_dict(charger.state) if charger.state else ChargerState(charge_box_id)
    state.charge_box_id = charge_box_id
    Charger.objects.filter(pk=charger.pk).update(
        charger_connected=True,
        charger_connected_at=now,
        last_seen_at=now,
        upstream_authorization=authorization or "",
        served_by=served_by,
    )
    return ConnectionDecision(True, "", charger.upstream_url, state)


def record_charger_gone(charge_box_id: str, state: ChargerState, now: datetime) -> None:
    Charger.objects.filter(charge_box_id=charge_box_id).update(
        charger_connected=False,
        charger_disconnected_at=now,
        csms_state=Charger.CsmsState.CLOSED,
        csms_down_since=None,
        state=state.to_dict(),
    )


def save_charger_states(states: list[ChargerState], effects: list[tuple[str, observe.Effect]]) -> None:
    """Write the live model of every changed charger, and what its traffic implied, at once."""
    with transaction.atomic():
        if states:
            # One prepared statement for all rows: this runs every second for every charger
            # whose model changed, and the ORM's per-row update costs several times more.
            rows = [
                (
                    state.vendor[:100],
                    state.model[:100],
                    state.serial_number[:100],
                    state.firmware_version[:100],
                    state.csms_state,
                    _db_datetime(state.csms_down_since),
                    _db_datetime(state.last_seen_at),
                    _jsonb_safe(json.dumps(state.to_dict())),
                    state.charge_box_id,
                )
                for state in states
            ]
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {Charger._meta.db_table} SET vendor = %s, model = %s, serial_number = %s, "
                    "firmware_version = %s, csms_state = %s, csms_down_since = %s, last_seen_at = %s, state = %s "
                    "WHERE charge_box_id = %s",
                    rows,
                )
        for charge_box_id, effect in effects:
            _apply_effect(charge_box_id, effect)


def _apply_effect(charge_box_id: str, effect: observe.Effect) -> None:
    if isinstance(effect, observe.TransactionStarted):
        charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
        if charger is None:
            return
        tx = effect.transaction
        TransactionRecord.objects.update_or_create(
            charger=charger,
            transaction_id=tx.transaction_id,
            defaults={
                "connector_id": tx.connector_id,
                "csms_transaction_id": tx.csms_transaction_id,
                "id_tag": tx.id_tag[:20],
                "id_tag_status": tx.id_tag_status[:20],
                "meter_start_wh": tx.meter_start_wh,
                "started_at": tx.started_at,
            },
        )
    elif isinstance(effect, observe.TransactionStopped):
        TransactionRecord.objects.filter(
            charger__charge_box_id=charge_box_id, transaction_id=effect.transaction_id
        ).update(meter_stop_wh=effect.meter_stop_wh, stopped_at=effect.stopped_at, stop_reason=effect.reason[:32])
    else:
        offline_store.apply_effect(charge_box_id, effect)


def _db_datetime(value: datetime | None):
    return connection.ops.adapt_datetimefield_value(value) if value is not None else None


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _jsonb_safe(text: str) -> str:
    r"""Drop \u0000 escapes (relayed from a charger's free text): PostgreSQL's jsonb refuses them,
    and one such row would fail the whole batch."""
    return _NUL_ESCAPE.sub(r"\1", text) if "\\u0000" in text else text


def mark_all_chargers_gone(now: datetime) -> int:
    """Embedded start-up: a single process that just started holds no charger, whatever the
    database says after a crash."""
    return Charger.objects.filter(charger_connected=True).update(
        charger_connected=False, charger_disconnected_at=now, csms_state=Charger.CsmsState.CLOSED
    )
