"""OCPP-J 1.6 RPC frames: parse what we relay, build what we send.

Pure: no Django, no I/O. Every frame keeps its raw text so the relay can forward it byte for
byte; parsing is for understanding only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CALL = 2
CALLRESULT = 3
CALLERROR = 4

MAX_UNIQUE_ID_LENGTH = 36

# OCPP-J 1.6 Table 7. FormationViolation and OccurenceConstraintViolation are the 1.6
# spellings (the errata keep them).
ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)


class FrameError(ValueError):
    """A frame we cannot understand. `code` is the OCPP error code to answer with."""

    def __init__(self, code: str, reason: str, unique_id: str | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.unique_id = unique_id


@dataclass(slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]
    raw: str = field(default="", repr=False)


@dataclass(slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]
    raw: str = field(default="", repr=False)


@dataclass(slots=True)
class CallError:
    unique_id: str
    error_code: str
    error_description: str
    error_details: dict[str, Any]
    raw: str = field(default="", repr=False)


Frame = Call | CallResult | CallError


def parse_frame(raw: str | bytes) -> Frame:
    """Parse one OCPP-J frame, or raise FrameError saying what is wrong with it."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("FormationViolation", "frame is not UTF-8") from None
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("FormationViolation", "frame is not valid JSON") from None
    if "\\u" in raw and _SURROGATE_ESCAPE.search(raw) and _holds_lone_surrogate(message):
        # JSON allows "\ud800" on its own; Unicode text (and UTF-8, and the database) does not.
        raise FrameError("FormationViolation", "frame holds a lone surrogate escape, not Unicode text")
    if not isinstance(message, list) or not message:
        raise FrameError("FormationViolation", "frame is not a JSON array")
    message_type = message[0]
    unique_id = message[1] if len(message) > 1 else None
    if not isinstance(unique_id, str):
        raise FrameError("FormationViolation", "unique id is missing or not a string")
    if len(unique_id) > MAX_UNIQUE_ID_LENGTH:
        raise FrameError("FormationViolation", "unique id longer than 36 characters", unique_id)
    if message_type == CALL:
        if len(message) != 4:
            raise FrameError("FormationViolation", "CALL must have 4 elements", unique_id)
        action, payload = message[2], message[3]
        if not isinstance(action, str) or not action:
            raise FrameError("FormationViolation", "CALL action is not a string", unique_id)
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise FrameError("FormationViolation", "CALL payload is not an object", unique_id)
        return Call(unique_id, action, payload, raw)
    if message_type == CALLRESULT:
        if len(message) != 3:
            raise FrameError("FormationViolation", "CALLRESULT must have 3 elements", unique_id)
        payload = message[2]
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise FrameError("FormationViolation", "CALLRESULT payload is not an object", unique_id)
        return CallResult(unique_id, payload, raw)
    if message_type == CALLERROR:
        if len(message) not in (4, 5):
            raise FrameError("FormationViolation", "CALLERROR must have 5 elements", unique_id)
        code, description = message[2], message[3]
        details = message[4] if len(message) == 5 else {}
        if not isinstance(code, str) or not isinstance(description, str):
            raise FrameError("FormationViolation", "CALLERROR code/description not strings", unique_id)
        if details is None:
            details = {}
        if not isinstance(details, dict):
            raise FrameError("FormationViolation", "CALLERROR details is not an object", unique_id)
        return CallError(unique_id, code, description, details, raw)
    raise FrameError("ProtocolError", f"unknown message type {message_type!r}", unique_id)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(message) -> bool:
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def _dumps(message: list) -> str:
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Text that cannot go out as UTF-8 (a lone surrogate from somewhere): escape it.
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=True)
    return text


def build_call(unique_id: str, action: str, payload: dict[str, Any]) -> Call:
    return Call(unique_id, action, payload, _dumps([CALL, unique_id, action, payload]))


def build_call_result(unique_id: str, payload: dict[str, Any]) -> CallResult:
    return CallResult(unique_id, payload, _dumps([CALLRESULT, unique_id, payload]))


def build_call_error(
    unique_id: str, error_code: str, description: str = "", details: dict[str, Any] | None = None
) -> CallError:
    details = details or {}
    return CallError(
        unique_id, error_code, description, details, _dumps([CALLERROR, unique_id, error_code, description, details])
    )
