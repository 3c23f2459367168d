"""gateway.offline: what LinkRay answers while the CSMS is away, what it keeps for replay, and
how transaction ids are mapped. Pure: no Django, no sockets; `now` is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.offline import (
    ACCEPT_ALL,
    ANSWERABLE,
    CACHE,
    REJECT,
    authorization_status,
    for_replay,
    is_stored,
    local_answer,
    map_to_charger,
    map_to_csms,
    stop_on_invalid_id,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-01T12:00:00Z"


def answer(action: str, payload: dict | None = None, **options):
    return local_answer(action, payload or {}, now=NOW, heartbeat_interval_s=300, **options)


# --- authorization_status --------------------------------------------------------------------


@pytest.mark.parametrize("cached", [None, "Accepted", "Blocked", "Invalid"])
def test_accept_all_accepts_any_id_tag(cached):
    assert authorization_status(ACCEPT_ALL, cached, NOW - timedelta(days=1), NOW) == "Accepted"


@pytest.mark.parametrize("cached", [None, "Accepted"])
def test_reject_refuses_any_id_tag(cached):
    assert authorization_status(REJECT, cached, None, NOW) == "Invalid"


def test_the_cache_refuses_an_id_tag_it_has_never_seen():
    assert authorization_status(CACHE, None, None, NOW) == "Invalid"


def test_the_cache_accepts_an_accepted_id_tag_without_expiry():
    assert authorization_status(CACHE, "Accepted", None, NOW) == "Accepted"


def test_the_cache_accepts_an_accepted_id_tag_until_its_expiry():
    assert authorization_status(CACHE, "Accepted", NOW + timedelta(seconds=1), NOW) == "Accepted"


@pytest.mark.parametrize("expiry", [NOW, NOW - timedelta(seconds=1)])
def test_the_cache_reports_an_accepted_id_tag_as_expired_from_its_expiry_on(expiry):
    assert authorization_status(CACHE, "Accepted", expiry, NOW) == "Expired"


@pytest.mark.parametrize("cached", ["Blocked", "Invalid", "Expired", "ConcurrentTx"])
def test_the_cache_repeats_a_refusal_whatever_the_expiry(cached):
    assert authorization_status(CACHE, cached, NOW - timedelta(days=1), NOW) == cached
    assert authorization_status(CACHE, cached, None, NOW) == cached


# --- local_answer ----------------------------------------------------------------------------


def test_a_boot_is_accepted_with_the_heartbeat_interval_and_the_time_in_utc():
    assert answer("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X"}) == {
        "status": "Accepted",
        "currentTime": NOW_TEXT,
        "interval": 300,
    }


def test_a_heartbeat_gets_the_current_time():
    assert answer("Heartbeat") == {"currentTime": NOW_TEXT}


def test_the_current_time_keeps_sub_second_precision():
    at = NOW.replace(microsecond=250000)
    assert local_answer("Heartbeat", {}, now=at, heartbeat_interval_s=1) == {"currentTime": "2026-03-01T12:00:00.250000Z"}


@pytest.mark.parametrize(
    "action",
    [
        "StatusNotification",
        "MeterValues",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "SecurityEventNotification",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
    ],
)
def test_notifications_get_an_empty_answer(action):
    assert answer(action, {"connectorId": 1, "status": "Available"}) == {}


def test_authorize_answers_with_the_given_status():
    assert answer("Authorize", {"idTag": "T"}, id_tag_status="Accepted") == {"idTagInfo": {"status": "Accepted"}}


def test_authorize_without_a_status_is_invalid():
    assert answer("Authorize", {"idTag": "T"}) == {"idTagInfo": {"status": "Invalid"}}


def test_a_start_gets_the_local_transaction_id_and_the_status():
    assert answer("StartTransaction", {"connectorId": 1, "idTag": "T"}, id_tag_status="Accepted", transaction_id=-3) == {
        "transactionId": -3,
        "idTagInfo": {"status": "Accepted"},
    }


def test_a_start_without_a_status_is_invalid():
    assert answer("StartTransaction", {"idTag": "T"}, transaction_id=4)["idTagInfo"] == {"status": "Invalid"}


def test_a_stop_with_an_id_tag_gets_the_id_tag_accepted():
    assert answer("StopTransaction", {"transactionId": 1, "idTag": "T"}) == {"idTagInfo": {"status": "Accepted"}}


@pytest.mark.parametrize("payload", [{"transactionId": 1}, {"transactionId": 1, "idTag": ""}])
def test_a_stop_without_an_id_tag_gets_an_empty_answer(payload):
    assert answer("StopTransaction", payload) == {}


def test_a_data_transfer_is_accepted():
    assert answer("DataTransfer", {"vendorId": "acme", "data": "x"}) == {"status": "Accepted"}


def test_a_sign_certificate_is_rejected():
    assert answer("SignCertificate", {"csr": "x"}) == {"status": "Rejected"}


@pytest.mark.parametrize("action", ["FooBar", "GetConfiguration", "RemoteStartTransaction", ""])
def test_an_action_linkray_cannot_answer_gets_none(action):
    assert answer(action) is None


@pytest.mark.parametrize("action", sorted(ANSWERABLE))
def test_every_answerable_action_gets_an_answer(action):
    assert isinstance(answer(action, {"idTag": "T"}, transaction_id=1), dict)


# --- is_stored -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["Heartbeat", "Authorize", "SignCertificate"])
def test_questions_answered_in_the_moment_are_not_stored(action):
    assert not is_stored(action)


@pytest.mark.parametrize(
    "action",
    ["StartTransaction", "StopTransaction", "MeterValues", "StatusNotification", "BootNotification", "DataTransfer"],
)
def test_messages_the_csms_must_eventually_see_are_stored(action):
    assert is_stored(action)


# --- for_replay ------------------------------------------------------------------------------

RECEIVED = datetime(2026, 3, 1, 11, 0, 5, tzinfo=UTC)


def test_a_status_notification_without_timestamp_gets_the_time_it_was_received():
    payload = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
    assert for_replay("StatusNotification", payload, RECEIVED, {}) == {**payload, "timestamp": "2026-03-01T11:00:05Z"}
    assert "timestamp" not in payload


def test_a_status_notification_with_a_timestamp_replays_unchanged():
    payload = {"connectorId": 1, "status": "Charging", "timestamp": "2026-03-01T10:59:00Z"}
    assert for_replay("StatusNotification", payload, RECEIVED, {-1: 5}) is None


def test_meter_values_of_a_local_transaction_replay_with_the_csms_id():
    payload = {"connectorId": 1, "transactionId": -1, "meterValue": []}
    assert for_replay("MeterValues", payload, RECEIVED, {-1: 5001}) == {**payload, "transactionId": 5001}
    assert payload["transactionId"] == -1


def test_a_stop_of_a_local_transaction_replays_with_the_csms_id():
    payload = {"transactionId": -1, "meterStop": 10, "timestamp": "2026-03-01T11:00:00Z"}
    assert for_replay("StopTransaction", payload, RECEIVED, {-1: 5001}) == {**payload, "transactionId": 5001}


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("MeterValues", {"connectorId": 1, "transactionId": 7, "meterValue": []}),
        ("MeterValues", {"connectorId": 1, "meterValue": []}),
        ("StopTransaction", {"transactionId": 8, "meterStop": 1}),
        ("StopTransaction", {"transactionId": "-1", "meterStop": 1}),
        ("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-03-01T11:00:00Z"}),
        ("DataTransfer", {"vendorId": "x", "transactionId": -1}),
        ("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}),
    ],
)
def test_a_message_with_nothing_to_change_replays_byte_for_byte(action, payload):
    assert for_replay(action, payload, RECEIVED, {-1: 5001}) is None


@given(st.dictionaries(st.integers(), st.integers(), max_size=4), st.integers())
def test_only_a_known_local_id_is_mapped_to_the_csms(local_to_csms, transaction_id):
    mapped = map_to_csms("StopTransaction", {"transactionId": transaction_id}, local_to_csms)
    if transaction_id in local_to_csms:
        assert mapped == {"transactionId": local_to_csms[transaction_id]}
    else:
        assert mapped is None


# --- map_to_charger --------------------------------------------------------------------------


def test_a_remote_stop_of_a_csms_id_goes_to_the_charger_with_its_local_id():
    payload = {"transactionId": 5001}
    assert map_to_charger("RemoteStopTransaction", payload, {5001: -1}) == {"transactionId": -1}
    assert payload == {"transactionId": 5001}


def test_a_remote_stop_of_an_unmapped_id_goes_unchanged():
    assert map_to_charger("RemoteStopTransaction", {"transactionId": 42}, {5001: -1}) is None


def test_a_tx_profile_for_a_csms_id_goes_to_the_charger_with_its_local_id():
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": 5001}
    payload = {"connectorId": 1, "csChargingProfiles": profile}
    assert map_to_charger("SetChargingProfile", payload, {5001: -1}) == {
        "connectorId": 1,
        "csChargingProfiles": {**profile, "transactionId": -1},
    }
    assert profile["transactionId"] == 5001


@pytest.mark.parametrize(
    "payload",
    [
        {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "chargingProfilePurpose": "TxDefaultProfile"}},
        {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "transactionId": 42}},
        {"connectorId": 1, "csChargingProfiles": "nope"},
        {"connectorId": 1},
    ],
)
def test_a_profile_without_a_mapped_transaction_goes_unchanged(payload):
    assert map_to_charger("SetChargingProfile", payload, {5001: -1}) is None


def test_other_csms_calls_are_never_mapped():
    assert map_to_charger("GetCompositeSchedule", {"transactionId": 5001}, {5001: -1}) is None


# --- stop_on_invalid_id ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), (" True ", True), ("false", False), ("False", False), ("", False), ("maybe", False)],
)
def test_stop_transaction_on_invalid_id_reads_the_configuration_value(value, expected):
    assert stop_on_invalid_id(value) is expected


def test_a_charger_that_hides_stop_transaction_on_invalid_id_is_taken_to_stop():
    assert stop_on_invalid_id(None) is True


# --- what the CSMS sees after LinkRay acted on its answers ----------------------------------


def test_a_stop_linkray_caused_for_a_rejected_id_tag_reaches_the_csms_as_deauthorized():
    from gateway.offline import deauthorized_stop

    payload = {"transactionId": 7, "meterStop": 10, "timestamp": "t", "reason": "Remote"}
    assert deauthorized_stop("StopTransaction", payload, {7}) == {**payload, "reason": "DeAuthorized"}


def test_other_stops_keep_their_reason():
    from gateway.offline import deauthorized_stop

    assert deauthorized_stop("StopTransaction", {"transactionId": 8, "reason": "Remote"}, {7}) is None
    assert deauthorized_stop("StopTransaction", {"transactionId": 7, "reason": "Local"}, {7}) is None
    assert deauthorized_stop("MeterValues", {"transactionId": 7, "reason": "Remote"}, {7}) is None
    assert deauthorized_stop("StopTransaction", {"transactionId": "7", "reason": "Remote"}, {7}) is None


def test_an_accepted_replayed_boot_with_another_interval_changes_the_heartbeat_interval():
    from gateway.offline import BootFollowUp, boot_follow_up

    assert boot_follow_up({"status": "Accepted", "interval": 30, "currentTime": "x"}, 300) == BootFollowUp(
        heartbeat_interval_s=30, status="Accepted"
    )
    assert boot_follow_up({"status": "Accepted", "interval": 300}, 300) == BootFollowUp(status="Accepted")


def test_a_pending_or_rejected_replayed_boot_makes_the_charger_boot_again_after_the_interval():
    from gateway.offline import BootFollowUp, boot_follow_up

    assert boot_follow_up({"status": "Pending", "interval": 20}, 300) == BootFollowUp(boot_again_after_s=20, status="Pending")
    assert boot_follow_up({"status": "Rejected", "interval": 0}, 300) == BootFollowUp(boot_again_after_s=0, status="Rejected")


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text(max_size=10), st.booleans())))
def test_any_boot_answer_gives_a_follow_up_without_raising(answer):
    from gateway.offline import boot_follow_up

    follow_up = boot_follow_up(answer, 300)
    assert follow_up.heartbeat_interval_s is None or follow_up.heartbeat_interval_s > 0
