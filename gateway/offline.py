"""Offline continuity rules: what LinkRay answers while the CSMS is away, what it keeps for
replay, and how transaction ids are mapped once the CSMS has assigned its own.

Pure: no Django, no I/O; `now` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Charger CALLs the CSMS must eventually receive. Heartbeat and Authorize are questions whose
# answers only matter at the moment they are asked; SignCertificate needs the CSMS's CA.
NOT_STORED = frozenset({"Heartbeat", "Authorize", "SignCertificate"})

# Answers for the charger-initiated CALLs LinkRay can serve itself.
_EMPTY_ANSWER = frozenset(
    {
        "StatusNotification",
        "MeterValues",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "SecurityEventNotification",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
    }
)
ANSWERABLE = _EMPTY_ANSWER | {"BootNotification", "Heartbeat", "Authorize", "StartTransaction", "StopTransaction", "DataTransfer", "SignCertificate"}

# Messages whose transactionId refers to a transaction the charger may know by a local id.
TO_CSMS_WITH_TRANSACTION = frozenset({"MeterValues", "StopTransaction"})
TO_CHARGER_WITH_TRANSACTION = frozenset({"RemoteStopTransaction", "SetChargingProfile"})

ACCEPT_ALL = "accept_all"
CACHE = "cache"
REJECT = "reject"


def is_stored(action: str) -> bool:
    return action not in NOT_STORED


def authorization_status(
    policy: str, cached_status: str | None, cached_expiry: datetime | None, now: datetime
) -> str:
    """The idTag status LinkRay answers with while offline, per the site's policy."""
    if policy == ACCEPT_ALL:
        return "Accepted"
    if policy == REJECT:
        return "Invalid"
    if cached_status is None:
        return "Invalid"
    if cached_status == "Accepted" and cached_expiry is not None and cached_expiry <= now:
        return "Expired"
    return cached_status


def local_answer(
    action: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    heartbeat_interval_s: int,
    id_tag_status: str | None = None,
    transaction_id: int | None = None,
) -> dict[str, Any] | None:
    """The CALLRESULT payload LinkRay sends in the CSMS's place, or None if it cannot answer."""
    current_time = now.isoformat().replace("+00:00", "Z")
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": current_time, "interval": heartbeat_interval_s}
    if action == "Heartbeat":
        return {"currentTime": current_time}
    if action in _EMPTY_ANSWER:
        return {}
    if action == "Authorize":
        return {"idTagInfo": {"status": id_tag_status or "Invalid"}}
    if action == "StartTransaction":
        return {"transactionId": transaction_id, "idTagInfo": {"status": id_tag_status or "Invalid"}}
    if action == "StopTransaction":
        return {"idTagInfo": {"status": "Accepted"}} if payload.get("idTag") else {}
    if action == "DataTransfer":
        # Kept for the CSMS; the vendor's reply data cannot be known now.
        return {"status": "Accepted"}
    if action == "SignCertificate":
        return {"status": "Rejected"}
    return None


def for_replay(action: str, payload: dict[str, Any], received_at: datetime, local_to_csms: dict[int, int]) -> dict[str, Any] | None:
    """The payload to replay, or None when the stored frame can go out byte for byte.

    Transaction ids the charger got from LinkRay become the CSMS's, and a StatusNotification
    without a timestamp gets the time it was received, so the CSMS sees when it happened.
    """
    changed = None
    if action == "StatusNotification" and not payload.get("timestamp"):
        changed = {**payload, "timestamp": received_at.isoformat().replace("+00:00", "Z")}
    mapped = map_to_csms(action, changed or payload, local_to_csms)
    return mapped if mapped is not None else changed


def map_to_csms(action: str, payload: dict[str, Any], local_to_csms: dict[int, int]) -> dict[str, Any] | None:
    if action not in TO_CSMS_WITH_TRANSACTION:
        return None
    transaction_id = payload.get("transactionId")
    if isinstance(transaction_id, int) and transaction_id in local_to_csms:
        return {**payload, "transactionId": local_to_csms[transaction_id]}
    return None


def map_to_charger(action: str, payload: dict[str, Any], csms_to_local: dict[int, int]) -> dict[str, Any] | None:
    if action == "RemoteStopTransaction":
        transaction_id = payload.get("transactionId")
        if isinstance(transaction_id, int) and transaction_id in csms_to_local:
            return {**payload, "transactionId": csms_to_local[transaction_id]}
        return None
    if action == "SetChargingProfile":
        profile = payload.get("csChargingProfiles")
        if isinstance(profile, dict):
            transaction_id = profile.get("transactionId")
            if isinstance(transaction_id, int) and transaction_id in csms_to_local:
                return {**payload, "csChargingProfiles": {**profile, "transactionId": csms_to_local[transaction_id]}}
    return None


def stop_on_invalid_id(configuration_value: str | None) -> bool:
    """StopTransactionOnInvalidId: required by the spec; a charger that hides it is taken as true."""
    if configuration_value is None:
        return True
    return configuration_value.strip().lower() == "true"


def deauthorized_stop(action: str, payload: dict[str, Any], deauthorized: set[int] | frozenset[int]) -> dict[str, Any] | None:
    """The StopTransaction the CSMS must see for a transaction LinkRay stopped because the CSMS
    rejected its idTag on replay, or None to leave the payload as it is.

    LinkRay stopped it with a RemoteStopTransaction of its own, so the charger reports reason
    `Remote`; but the CSMS never sent that RemoteStop. A charger that had been online would
    have stopped by itself (StopTransactionOnInvalidId) and reported `DeAuthorized`."""
    if action != "StopTransaction":
        return None
    transaction_id = payload.get("transactionId")
    if not isinstance(transaction_id, int) or transaction_id not in deauthorized:
        return None
    if payload.get("reason") != "Remote":
        return None
    return {**payload, "reason": "DeAuthorized"}


@dataclass(frozen=True, slots=True)
class BootFollowUp:
    """What LinkRay does once the CSMS answers a BootNotification replayed after an outage,
    so the charger ends up as if it had heard the answer itself."""

    heartbeat_interval_s: int | None = None  # ChangeConfiguration HeartbeatInterval to this
    boot_again_after_s: int | None = None  # TriggerMessage BootNotification after this long
    status: str = ""


def boot_follow_up(answer: dict[str, Any], offline_heartbeat_interval_s: int) -> BootFollowUp:
    """The charger got LinkRay's offline answer (Accepted, offline_heartbeat_interval_s).

    - Accepted: the charger adopts the CSMS's interval (ChangeConfiguration HeartbeatInterval)
      when it differs from what LinkRay told it.
    - Pending / Rejected: a charger would boot again after `interval` seconds (OCPP 1.6 §4.2)
      and hear the verdict itself; LinkRay asks it to with TriggerMessage BootNotification
      after that interval (at once if the CSMS gave none).
    - Anything unreadable: nothing (the charger keeps what it has).
    """
    status = answer.get("status")
    interval = answer.get("interval")
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
        interval = None
    if status == "Accepted":
        if interval and interval != offline_heartbeat_interval_s:
            return BootFollowUp(heartbeat_interval_s=interval, status=status)
        return BootFollowUp(status=status)
    if status in ("Pending", "Rejected"):
        return BootFollowUp(boot_again_after_s=interval or 0, status=status)
    return BootFollowUp()
