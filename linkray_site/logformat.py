"""Log lines as one JSON object per line (`LINKRAY_LOG_FORMAT=json`).

LinkRay's log lines are `event_name key=value key=value ...` (house style §5); this formatter
keeps that text as `message` and also lifts the event name and every `key=value` field into
JSON fields, so a log pipeline can filter on `charge_box_id` without parsing text. Every line
of a `gateway` logger carries `charge_box_id` (null when the line is not about one charger).

Pure: stdlib only.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# A field starts at a word boundary with `key=`; its value runs up to the next ` key=` or the
# end, so values with spaces (`error=CSMS refused the connection with HTTP 401`) stay whole.
_FIELD = re.compile(r"(?:^|(?<=\s))([A-Za-z_][A-Za-z0-9_.]*)=(.*?)(?=\s+[A-Za-z_][A-Za-z0-9_.]*=|\s*$)", re.S)
_EVENT = re.compile(r"^([a-z][a-z0-9_.]*)(?:\s|$)")
_INTEGER = re.compile(r"^-?\d{1,18}$")
# Keys the JSON line sets itself; a field of the same name is kept under `field_<name>`.
_RESERVED = frozenset({"at", "level", "logger", "event", "message", "traceback"})


def parse_event_line(message: str) -> tuple[str | None, dict[str, object]]:
    """(`event_name`, {key: value}) of an `event_name key=value ...` line.

    Whole numbers become ints, everything else stays text; a line that does not start with an
    event name gives (None, {})."""
    match = _EVENT.match(message)
    if match is None:
        return None, {}
    fields: dict[str, object] = {}
    for key, value in _FIELD.findall(message[match.end(1):]):
        fields[key] = int(value) if _INTEGER.match(value) else value
    return match.group(1), fields


def json_log_record(
    *, at: datetime, level: str, logger: str, message: str, traceback: str | None = None
) -> dict[str, object]:
    event, fields = parse_event_line(message)
    record: dict[str, object] = {
        "at": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "logger": logger,
        "event": event,
    }
    if logger == "gateway" or logger.startswith("gateway."):
        record["charge_box_id"] = None
    for key, value in fields.items():
        record[f"field_{key}" if key in _RESERVED else key] = value
    record["message"] = message
    if traceback:
        record["traceback"] = traceback
    return record


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as error:  # a bad format string must not lose the line
            message = f"log_format_failed msg={record.msg!r} args={record.args!r} error={error!r}"
        traceback = None
        if record.exc_info:
            traceback = self.formatException(record.exc_info)
        elif record.exc_text:
            traceback = record.exc_text
        if record.stack_info:
            traceback = (traceback + "\n" if traceback else "") + self.formatStack(record.stack_info)
        line = json_log_record(
            at=datetime.fromtimestamp(record.created, UTC),
            level=record.levelname,
            logger=record.name,
            message=message,
            traceback=traceback,
        )
        return json.dumps(line, ensure_ascii=False, default=str)
