"""LINKRAY_LOG_FORMAT=json: one JSON object per line with the event's fields lifted out."""

from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from linkray_site.logformat import JsonFormatter, parse_event_line


def formatted(name: str, message: str, *args, exc_info=None) -> dict:
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, exc_info)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_event_name_and_fields_become_json_fields():
    line = formatted("gateway.upstream", "csms_reconnect_refused charge_box_id=%s status=%s", "CP-1", 401)
    assert line["event"] == "csms_reconnect_refused"
    assert line["charge_box_id"] == "CP-1"
    assert line["status"] == 401
    assert line["level"] == "WARNING"
    assert line["logger"] == "gateway.upstream"
    assert line["message"] == "csms_reconnect_refused charge_box_id=CP-1 status=401"


def test_a_value_with_spaces_stays_whole_up_to_the_next_field():
    event, fields = parse_event_line("csms_unreachable charge_box_id=CP1 error=Connect call failed ('127.0.0.1', 9) retry=2")
    assert event == "csms_unreachable"
    assert fields == {"charge_box_id": "CP1", "error": "Connect call failed ('127.0.0.1', 9)", "retry": 2}


def test_every_gateway_line_carries_charge_box_id_even_when_not_about_one_charger():
    assert formatted("gateway.runtime", "journal_entries_dropped total=%d", 5)["charge_box_id"] is None
    assert "charge_box_id" not in formatted("meters.poller", "meter_recovered meter=grid failed_polls=3")


def test_a_traceback_is_kept_in_one_field_of_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        line = formatted("gateway.consumers", "charger_frame_failed charge_box_id=%s", "CP9", exc_info=sys.exc_info())
    assert "ValueError: boom" in line["traceback"]
    assert line["charge_box_id"] == "CP9"


def test_a_field_named_like_a_json_key_does_not_overwrite_it():
    line = formatted("gateway.session", "odd level=debug message=hello")
    assert line["level"] == "WARNING"
    assert line["field_level"] == "debug"


def test_a_line_that_is_not_an_event_is_kept_as_its_message():
    line = formatted("linkray.serve", "LinkRay listening on http://x:1/")
    assert line["event"] is None
    assert line["message"] == "LinkRay listening on http://x:1/"


def test_a_broken_format_string_still_gives_a_line():
    line = formatted("gateway.session", "frame_unparsed charge_box_id=%s count=%d", "CP1")
    assert line["event"] == "log_format_failed"


@given(st.text())
def test_any_message_gives_one_json_line(message):
    line = formatted("gateway.session", "%s", message)
    assert line["message"] == message
