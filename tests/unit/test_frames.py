"""gateway.frames: parse_frame either understands a frame or says, with an OCPP error code, what
is wrong with it; build_* produce frames parse_frame reads back. Pure: no Django, no sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.frames import (
    CALL,
    CALLERROR,
    CALLRESULT,
    ERROR_CODES,
    MAX_UNIQUE_ID_LENGTH,
    Call,
    CallError,
    CallResult,
    FrameError,
    build_call,
    build_call_error,
    build_call_result,
    parse_frame,
)

# JSON values as json.loads can return them (no NaN: it would not compare equal to itself).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
unique_ids = st.text(max_size=MAX_UNIQUE_ID_LENGTH)
actions = st.text(min_size=1, max_size=40)

# Frames that look like OCPP arrays, so the generator reaches the per-type checks and not only
# "not an array".
frame_like = st.lists(json_values, max_size=6) | st.tuples(
    st.sampled_from([CALL, CALLRESULT, CALLERROR, 0, 1, 5, 2.0, "2", None, True]),
    st.one_of(unique_ids, st.text(min_size=37, max_size=60), json_values),
).flatmap(lambda head: st.lists(json_values, max_size=4).map(lambda rest: [*head, *rest]))


def parses_or_raises_frame_error(raw: str | bytes) -> None:
    try:
        frame = parse_frame(raw)
    except FrameError as error:
        assert error.code in ERROR_CODES
        assert error.reason
    else:
        assert isinstance(frame, Call | CallResult | CallError)
        assert frame.raw == raw
        assert isinstance(frame.unique_id, str) and len(frame.unique_id) <= MAX_UNIQUE_ID_LENGTH
        assert isinstance(frame.payload if not isinstance(frame, CallError) else frame.error_details, dict)


# --- any input -------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text())
def test_any_text_parses_or_raises_a_frame_error_with_an_ocpp_code(raw):
    parses_or_raises_frame_error(raw)


@settings(max_examples=300)
@given(st.binary())
def test_any_bytes_parse_or_raise_a_frame_error_with_an_ocpp_code(raw):
    parses_or_raises_frame_error(raw)


@settings(max_examples=300)
@given(json_values)
def test_any_json_value_parses_or_raises_a_frame_error_with_an_ocpp_code(value):
    parses_or_raises_frame_error(json.dumps(value))


@settings(max_examples=300)
@given(frame_like)
def test_any_array_parses_or_raises_a_frame_error_with_an_ocpp_code(message):
    parses_or_raises_frame_error(json.dumps(message))


def test_deeply_nested_json_is_a_formation_violation_not_a_crash():
    with pytest.raises(FrameError) as caught:
        parse_frame("[" * 100_000 + "]" * 100_000)
    assert caught.value.code == "FormationViolation"


# --- round trips -----------------------------------------------------------------------------


@given(unique_ids, actions, json_objects)
def test_a_built_call_parses_back_to_the_same_call(unique_id, action, payload):
    built = build_call(unique_id, action, payload)
    parsed = parse_frame(built.raw)
    assert parsed == built
    assert (parsed.unique_id, parsed.action, parsed.payload, parsed.raw) == (unique_id, action, payload, built.raw)


@given(unique_ids, json_objects)
def test_a_built_call_result_parses_back_to_the_same_result(unique_id, payload):
    built = build_call_result(unique_id, payload)
    parsed = parse_frame(built.raw)
    assert isinstance(parsed, CallResult)
    assert (parsed.unique_id, parsed.payload, parsed.raw) == (unique_id, payload, built.raw)


@given(unique_ids, st.sampled_from(sorted(ERROR_CODES)), st.text(max_size=40), json_objects)
def test_a_built_call_error_parses_back_to_the_same_error(unique_id, code, description, details):
    built = build_call_error(unique_id, code, description, details)
    parsed = parse_frame(built.raw)
    assert isinstance(parsed, CallError)
    assert (parsed.unique_id, parsed.error_code, parsed.error_description, parsed.error_details) == (
        unique_id,
        code,
        description,
        details,
    )
    assert parsed.raw == built.raw


def test_a_built_call_is_the_compact_ocpp_array():
    assert build_call("1", "Heartbeat", {}).raw == '[2,"1","Heartbeat",{}]'
    assert build_call_result("1", {"currentTime": "é"}).raw == '[3,"1",{"currentTime":"é"}]'


def test_a_call_error_without_description_or_details_has_empty_ones():
    error = build_call_error("7", "NotImplemented")
    assert json.loads(error.raw) == [CALLERROR, "7", "NotImplemented", "", {}]
    assert error.error_details == {}


def test_parsing_keeps_the_raw_text_unchanged():
    raw = ' [ 2 , "x" , "Heartbeat" , { } ] '
    assert parse_frame(raw).raw == raw


def test_a_unique_id_of_36_characters_is_accepted():
    unique_id = "u" * 36
    assert parse_frame(json.dumps([CALL, unique_id, "Heartbeat", {}])).unique_id == unique_id


def test_a_unique_id_longer_than_36_characters_is_a_formation_violation_naming_the_id():
    unique_id = "u" * 37
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps([CALL, unique_id, "Heartbeat", {}]))
    assert caught.value.code == "FormationViolation"
    assert caught.value.unique_id == unique_id


@pytest.mark.parametrize("unique_id", [None, 7, [], {}, True])
def test_a_unique_id_that_is_not_a_string_is_a_formation_violation(unique_id):
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps([CALL, unique_id, "Heartbeat", {}]))
    assert caught.value.code == "FormationViolation"
    assert caught.value.unique_id is None


def test_a_null_call_payload_reads_as_an_empty_object():
    call = parse_frame('[2, "1", "Heartbeat", null]')
    assert isinstance(call, Call) and call.payload == {}


def test_a_null_call_result_payload_reads_as_an_empty_object():
    result = parse_frame('[3, "1", null]')
    assert isinstance(result, CallResult) and result.payload == {}


def test_null_call_error_details_read_as_an_empty_object():
    error = parse_frame('[4, "1", "GenericError", "boom", null]')
    assert isinstance(error, CallError) and error.error_details == {}


def test_a_call_error_without_details_is_accepted_with_empty_details():
    error = parse_frame('[4, "1", "GenericError", "boom"]')
    assert isinstance(error, CallError)
    assert (error.error_code, error.error_description, error.error_details) == ("GenericError", "boom", {})


@pytest.mark.parametrize(
    "message",
    [
        [CALL, "1", "Heartbeat"],
        [CALL, "1", "Heartbeat", {}, {}],
        [CALLRESULT, "1"],
        [CALLRESULT, "1", {}, {}],
        [CALLERROR, "1", "GenericError"],
        [CALLERROR, "1", "GenericError", "", {}, {}],
        [CALL],
    ],
)
def test_a_wrong_number_of_elements_is_a_formation_violation(message):
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps(message))
    assert caught.value.code == "FormationViolation"


@pytest.mark.parametrize(
    "message",
    [
        [CALL, "1", "", {}],
        [CALL, "1", 5, {}],
        [CALL, "1", "Heartbeat", []],
        [CALL, "1", "Heartbeat", "x"],
        [CALLRESULT, "1", [1]],
        [CALLRESULT, "1", 3],
        [CALLERROR, "1", 1, "", {}],
        [CALLERROR, "1", "GenericError", None, {}],
        [CALLERROR, "1", "GenericError", "", []],
    ],
)
def test_elements_of_the_wrong_type_are_a_formation_violation_naming_the_id(message):
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps(message))
    assert caught.value.code == "FormationViolation"
    assert caught.value.unique_id == "1"


@pytest.mark.parametrize("raw", ["", "nope", "[2, '1']", "{}", '"text"', "[]", "42", "null", '[2, "1", "A", {}'])
def test_text_that_is_not_a_json_array_is_a_formation_violation(raw):
    with pytest.raises(FrameError) as caught:
        parse_frame(raw)
    assert caught.value.code == "FormationViolation"


@pytest.mark.parametrize("message_type", [0, 1, 5, 99, -2, "2", None])
def test_an_unknown_message_type_is_a_protocol_error_naming_the_id(message_type):
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps([message_type, "abc", "Heartbeat", {}]))
    assert caught.value.code == "ProtocolError"
    assert caught.value.unique_id == "abc"


def test_utf8_bytes_parse_like_the_text_they_encode():
    raw = '[2,"é1","DataTransfer",{"data":"Grüße"}]'
    frame = parse_frame(raw.encode("utf-8"))
    assert isinstance(frame, Call)
    assert (frame.unique_id, frame.action, frame.payload) == ("é1", "DataTransfer", {"data": "Grüße"})


def test_bytes_that_are_not_utf8_are_a_formation_violation():
    with pytest.raises(FrameError) as caught:
        parse_frame(b'[2,"1","DataTransfer",{"data":"\xff\xfe"}]')
    assert caught.value.code == "FormationViolation"
    assert "UTF-8" in caught.value.reason


def test_a_frame_error_message_carries_code_and_reason():
    error = FrameError("ProtocolError", "unknown message type 9", "id")
    assert str(error) == "ProtocolError: unknown message type 9"
    assert isinstance(error, ValueError)


def test_a_lone_surrogate_escape_is_a_formation_violation_but_a_pair_is_text():
    with pytest.raises(FrameError) as error:
        parse_frame('[2,"a","Authorize",{"idTag":"\\udfff"}]')
    assert error.value.code == "FormationViolation"
    assert parse_frame('[2,"a","Authorize",{"idTag":"\\ud83d\\ude00"}]').payload == {"idTag": "\U0001F600"}


def test_a_frame_linkray_builds_is_always_utf8_encodable():
    raw = build_call("x", "DataTransfer", {"vendorId": "\udfff"}).raw
    raw.encode("utf-8")
