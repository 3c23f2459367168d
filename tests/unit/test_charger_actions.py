"""The charger page's action buttons: which CALL each one sends, and what bad input gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.charger_actions import ActionError, ChargerAction, action_from_form, answer_text


@pytest.mark.parametrize(
    ("form", "ocpp_action", "payload"),
    [
        ({"action": "remote_stop", "transaction_id": "77"}, "RemoteStopTransaction", {"transactionId": 77}),
        ({"action": "unlock", "connector_id": "2"}, "UnlockConnector", {"connectorId": 2}),
        ({"action": "reset", "type": "Soft"}, "Reset", {"type": "Soft"}),
        ({"action": "reset", "type": "Hard"}, "Reset", {"type": "Hard"}),
        ({"action": "availability", "connector_id": "1", "type": "Inoperative"}, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}),
        ({"action": "availability", "connector_id": "0", "type": "Operative"}, "ChangeAvailability", {"connectorId": 0, "type": "Operative"}),
        ({"action": "trigger", "message": "StatusNotification"}, "TriggerMessage", {"requestedMessage": "StatusNotification"}),
        ({"action": "trigger", "message": "MeterValues", "connector_id": "1"}, "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}),
    ],
)
def test_each_button_sends_its_ocpp_call_with_the_spec_payload(form, ocpp_action, payload):
    action = action_from_form(form)
    assert (action.ocpp_action, action.payload) == (ocpp_action, payload)
    assert action.audit_action == f"charger.call.{ocpp_action}"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "Choose an action."),
        ({"action": "format_disk"}, "Unknown action 'format_disk'"),
        ({"action": "remote_stop"}, "Choose a transaction."),
        ({"action": "remote_stop", "transaction_id": "abc"}, "must be a whole number"),
        ({"action": "unlock", "connector_id": "0"}, "between 1 and"),
        ({"action": "unlock", "connector_id": "99999999999"}, "between 1 and"),
        ({"action": "reset", "type": "Medium"}, "Choose a reset type: Soft or Hard."),
        ({"action": "availability", "connector_id": "1", "type": "Broken"}, "Operative or Inoperative"),
        ({"action": "trigger", "message": "BootNotification"}, "StatusNotification or MeterValues"),
    ],
)
def test_a_form_that_names_no_valid_call_is_refused_with_a_readable_sentence(form, message):
    with pytest.raises(ActionError) as caught:
        action_from_form(form)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("command", "ocpp_action", "payload"),
    [
        ("remote_stop:77", "RemoteStopTransaction", {"transactionId": 77}),
        ("unlock:1", "UnlockConnector", {"connectorId": 1}),
        ("reset:Hard", "Reset", {"type": "Hard"}),
        ("availability:0:Inoperative", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
        ("trigger:MeterValues:2", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 2}),
        ("trigger:StatusNotification", "TriggerMessage", {"requestedMessage": "StatusNotification"}),
    ],
)
def test_a_buttons_single_command_value_names_the_same_calls(command, ocpp_action, payload):
    action = action_from_form({"command": command})
    assert (action.ocpp_action, action.payload) == (ocpp_action, payload)


@pytest.mark.parametrize("command", ["unlock:1:2", "reset", "nonsense:1", "availability:1"])
def test_a_malformed_command_is_refused(command):
    with pytest.raises(ActionError):
        action_from_form({"command": command})


@given(st.dictionaries(st.sampled_from(["command", "action", "transaction_id", "connector_id", "type", "message", "x"]), st.text(max_size=30)))
def test_any_submitted_form_gives_a_call_or_an_action_error(form):
    try:
        action = action_from_form(form)
    except ActionError as error:
        assert str(error)
    else:
        assert isinstance(action, ChargerAction) and action.ocpp_action


def test_the_answer_says_what_the_charger_decided():
    action = action_from_form({"action": "unlock", "connector_id": "1"})
    assert answer_text(action, {"status": "Unlocked"}) == ("The charger answered unlock connector 1: Unlocked.", True)
    assert answer_text(action, {"status": "UnlockFailed"}) == ("The charger answered unlock connector 1: UnlockFailed.", False)
    assert answer_text(action, {}) == ("The charger answered unlock connector 1 without a status.", False)


def test_a_scheduled_availability_change_says_when_it_takes_effect():
    action = action_from_form({"action": "availability", "connector_id": "1", "type": "Inoperative"})
    text, agreed = answer_text(action, {"status": "Scheduled"})
    assert agreed and "when the running transaction ends" in text
