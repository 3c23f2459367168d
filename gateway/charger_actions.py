"""What the action buttons on a charger's page send: a submitted form in, one OCPP CALL out.

Pure (stdlib only): the view checks the right, sends the CALL through gateway.commands.send_call
and audits it; this module decides which CALL a button means, refuses anything else with a
sentence an operator can read, and turns the charger's answer into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RESET_TYPES = ("Soft", "Hard")
AVAILABILITY_TYPES = ("Operative", "Inoperative")
TRIGGER_MESSAGES = ("StatusNotification", "MeterValues")
ACTIONS = ("remote_stop", "unlock", "reset", "availability", "trigger")
_MAX_ID = 2**31 - 1  # OCPP integers are 32-bit signed


class ActionError(ValueError):
    """The submitted form does not name a CALL this page may send."""


@dataclass(frozen=True, slots=True)
class ChargerAction:
    ocpp_action: str  # the CALL's wire name, e.g. "RemoteStopTransaction"
    payload: dict[str, Any] = field(default_factory=dict)
    description: str = ""  # what the operator asked for, in words

    @property
    def audit_action(self) -> str:
        """Same name as the JSON API's calls use, so the audit log reads alike."""
        return f"charger.call.{self.ocpp_action}"


_COMMAND_FIELDS = {
    "remote_stop": ("transaction_id",),
    "unlock": ("connector_id",),
    "reset": ("type",),
    "availability": ("connector_id", "type"),
    "trigger": ("message", "connector_id"),
}


def form_from_command(command: str) -> dict[str, str]:
    """A button's one `command` value, e.g. `availability:1:Inoperative`, as form fields.
    (Buttons in the live part of the page name a form outside it, so each carries all it means
    in its value, and the refreshed fragment holds no CSRF token.)"""
    name, *values = command.strip().split(":")
    fields = _COMMAND_FIELDS.get(name, ())
    if len(values) > len(fields):
        raise ActionError("That button sent more than its action takes.")
    return {"action": name, **dict(zip(fields, values, strict=False))}


def action_from_form(form: Mapping[str, str]) -> ChargerAction:
    """The CALL a submitted action form asks for; ActionError for anything else."""
    if form.get("command"):
        form = form_from_command(str(form.get("command")))
    name = (form.get("action") or "").strip()
    if name == "remote_stop":
        transaction_id = _whole_number(form, "transaction_id", "transaction", minimum=-_MAX_ID - 1)
        return ChargerAction("RemoteStopTransaction", {"transactionId": transaction_id}, f"stop transaction {transaction_id}")
    if name == "unlock":
        connector_id = _whole_number(form, "connector_id", "connector", minimum=1)
        return ChargerAction("UnlockConnector", {"connectorId": connector_id}, f"unlock connector {connector_id}")
    if name == "reset":
        reset_type = _choice(form, "type", RESET_TYPES, "reset type")
        return ChargerAction("Reset", {"type": reset_type}, f"{reset_type.lower()} reset")
    if name == "availability":
        connector_id = _whole_number(form, "connector_id", "connector", minimum=0)
        availability = _choice(form, "type", AVAILABILITY_TYPES, "availability")
        where = "the whole charger" if connector_id == 0 else f"connector {connector_id}"
        return ChargerAction(
            "ChangeAvailability",
            {"connectorId": connector_id, "type": availability},
            f"make {where} {availability.lower()}",
        )
    if name == "trigger":
        message = _choice(form, "message", TRIGGER_MESSAGES, "message")
        payload: dict[str, Any] = {"requestedMessage": message}
        connector_text = (form.get("connector_id") or "").strip()
        if connector_text:
            payload["connectorId"] = _whole_number(form, "connector_id", "connector", minimum=0)
        where = f" for connector {payload['connectorId']}" if "connectorId" in payload else ""
        return ChargerAction("TriggerMessage", payload, f"ask for a {message}{where}")
    if not name:
        raise ActionError("Choose an action.")
    raise ActionError(f"Unknown action {name[:40]!r}: choose one of the buttons on the page.")


def answer_text(action: ChargerAction, answer: Mapping[str, Any]) -> tuple[str, bool]:
    """(what to tell the operator, whether the charger agreed) for the CALLRESULT payload."""
    status = answer.get("status") if isinstance(answer, Mapping) else None
    if not isinstance(status, str) or not status:
        return f"The charger answered {action.description} without a status.", False
    agreed = status in ("Accepted", "Unlocked", "Scheduled")
    note = " (it takes effect when the running transaction ends)" if status == "Scheduled" else ""
    return f"The charger answered {action.description}: {status}{note}.", agreed


def _whole_number(form: Mapping[str, str], key: str, label: str, *, minimum: int) -> int:
    text = (form.get(key) or "").strip()
    if not text:
        raise ActionError(f"Choose a {label}.")
    try:
        value = int(text)
    except ValueError:
        raise ActionError(f"The {label} must be a whole number, not {text[:20]!r}.") from None
    if value < minimum or value > _MAX_ID:
        raise ActionError(f"The {label} must be between {minimum} and {_MAX_ID}.")
    return value


def _choice(form: Mapping[str, str], key: str, choices: tuple[str, ...], label: str) -> str:
    value = (form.get(key) or "").strip()
    if value not in choices:
        raise ActionError(f"Choose a {label}: {' or '.join(choices)}.")
    return value
