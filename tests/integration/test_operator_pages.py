"""What an operator walking round the site needs from the pages: running sessions, finished
sessions with filters and CSV, actions on a charger by role (audited), honest offline badges,
one time format, and live fragments that cost nothing when unchanged."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEntry
from gateway import observe, services
from gateway.commands import CallErrorReceived, CallTimedOut, ChargerNotConnected
from gateway.frames import build_call, build_call_result
from gateway.models import Charger, TransactionRecord
from gateway.state import ChargerState, ConnectorState, MeterSnapshot, Transaction
from gateway.templatetags.site_time import format_site_time

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def frozen_now(monkeypatch):
    monkeypatch.setattr("gateway.views.timezone.now", lambda: NOW)
    return NOW


def user_in(django_user_model, group: str):
    user = django_user_model.objects.create_user(f"{group}-user", password="pw-12345-long")
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(user_in(django_user_model, "viewer"))
    return client


@pytest.fixture
def operator_client(client, django_user_model):
    client.force_login(user_in(django_user_model, "operator"))
    return client


def charger_with_session(charge_box_id: str = "CP-1", connected: bool = True, energy_now_wh: float = 13_500) -> Charger:
    state = ChargerState(charge_box_id, charger_connected=connected, csms_state="connected")
    state.connectors[1] = ConnectorState(1, status="Charging", meter=MeterSnapshot(energy_wh=energy_now_wh, power_w=7400, measured_at=NOW))
    state.connectors[2] = ConnectorState(2, status="Available")
    state.transactions[41] = Transaction(41, 1, "TAG-RUN", 12_000, NOW - timedelta(minutes=12, seconds=5), csms_transaction_id=41)
    return Charger.objects.create(
        charge_box_id=charge_box_id, charger_connected=connected, csms_state="connected", last_seen_at=NOW, state=state.to_dict()
    )


def finished(charger: Charger, transaction_id: int, id_tag: str, started_at: datetime, minutes: int = 30, wh: int = 5000, **fields):
    return TransactionRecord.objects.create(
        charger=charger,
        connector_id=1,
        transaction_id=transaction_id,
        id_tag=id_tag,
        meter_start_wh=1000,
        meter_stop_wh=1000 + wh,
        started_at=started_at,
        stopped_at=started_at + timedelta(minutes=minutes),
        stop_reason="EVDisconnected",
        **fields,
    )


# --- Running sessions ------------------------------------------------------------------


def test_charger_page_shows_the_running_sessions_id_tag_duration_and_energy_since_its_start(admin_client, frozen_now):
    charger_with_session()
    html = admin_client.get(reverse("charger", args=["CP-1"])).content.decode()
    row = html[html.index('data-connector-id="1"') :]
    row = row[: row.index("</tr>")]
    assert "TAG-RUN" in row
    assert "12 min 5 s" in row
    assert "1.500 kWh" in row  # 13,500 Wh now minus meterStart 12,000 Wh, not the register
    assert "13.500 kWh" in row  # the register is shown as such, in its own column


def test_a_meter_that_went_backwards_shows_no_session_energy_rather_than_a_negative_one(admin_client, frozen_now):
    charger_with_session(energy_now_wh=100)
    html = admin_client.get(reverse("charger", args=["CP-1"])).content.decode()
    row = html[html.index('data-connector-id="1"') :]
    assert "— kWh" in row[: row.index("</tr>")]


# --- The CSMS id bug ------------------------------------------------------------------------


def test_a_live_start_transaction_is_stored_with_the_csms_id_and_the_page_shows_it(admin_client):
    Charger.objects.create(charge_box_id="CP-1", charger_connected=True, csms_state="connected")
    state = ChargerState("CP-1", charger_connected=True)
    call = build_call("c1", "StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": "2026-03-01T11:00:00Z"})
    answer = build_call_result("c1", {"transactionId": 501, "idTagInfo": {"status": "Accepted"}})
    effects = observe.observe_charger_exchange(state, call, answer, NOW)
    services.save_charger_states([state], [("CP-1", effect) for effect in effects])
    assert TransactionRecord.objects.get(transaction_id=501).csms_transaction_id == 501
    html = admin_client.get(reverse("charger", args=["CP-1"])).content.decode()
    open_table = html[html.index('id="open-transactions"') :]
    open_table = open_table[: open_table.index("</table>")]
    assert "not yet assigned" not in open_table and "501" in open_table


# --- Offline badges and time format ---------------------------------------------------------


def test_an_offline_chargers_connectors_are_not_shown_as_green_available(admin_client, frozen_now):
    charger_with_session(connected=False)
    html = admin_client.get(reverse("dashboard")).content.decode()
    row = html[html.index('data-charge-box-id="CP-1"') :]
    row = row[: row.index("</tr>")]
    assert "badge ok\">Available" not in row
    assert "Unknown · last Available" in row and "status-unknown" in row


def test_a_connected_chargers_available_connector_is_green(admin_client, frozen_now):
    charger_with_session(connected=True)
    html = admin_client.get(reverse("dashboard")).content.decode()
    assert 'badge ok">Available' in html


def test_times_are_shown_in_one_format_in_the_sites_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    assert format_site_time(datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)) == "2026-03-01 13:00:05"
    assert format_site_time("2026-07-01T12:00:00Z") == "2026-07-01 14:00:00"
    assert format_site_time(None) == ""
    assert format_site_time("not a time") == "not a time"


def test_the_charger_page_uses_the_site_time_format_everywhere(admin_client, frozen_now, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    charger_with_session()
    html = admin_client.get(reverse("charger", args=["CP-1"])).content.decode()
    assert "2026-03-01 13:00:00" in html  # measured_at / last seen, in Berlin time
    assert "Times in Europe/Berlin" in html


# --- Finished sessions ----------------------------------------------------------------------


@pytest.fixture
def history():
    one = charger_with_session("CP-1")
    two = charger_with_session("CP-2")
    finished(one, 1, "ALICE", NOW - timedelta(days=3))
    finished(one, 2, "BOB", NOW - timedelta(days=1), wh=12_345)
    finished(two, 3, "ALICE", NOW - timedelta(hours=2))
    finished(two, 4, "=HYPERLINK(1)", NOW - timedelta(hours=1))


def session_ids(response) -> list[str]:
    html = response.content.decode()
    table = html[html.index('id="sessions"') : html.index("</table>", html.index('id="sessions"'))]
    return [cell.split("</td>")[0].strip().split()[0] for cell in table.split('data-label="Transaction" class="num">')[1:]]


def test_the_sessions_page_lists_finished_sessions_newest_first_for_a_viewer(viewer_client, history):
    response = viewer_client.get(reverse("sessions"))
    assert response.status_code == 200
    assert session_ids(response) == ["4", "3", "2", "1"]
    assert "12.345 kWh" in response.content.decode()  # meter stop minus meter start


def test_the_sessions_page_does_not_list_running_sessions(viewer_client, history):
    TransactionRecord.objects.create(charger=Charger.objects.get(charge_box_id="CP-1"), connector_id=1, transaction_id=9, id_tag="RUN", started_at=NOW)
    assert "9" not in session_ids(viewer_client.get(reverse("sessions")))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"charge_box_id": "CP-1"}, ["2", "1"]),
        ({"id_tag": "alice"}, ["3", "1"]),
        ({"date_from": "2026-02-28", "date_to": "2026-02-28"}, ["2"]),
        ({"date_from": "2026-03-01"}, ["4", "3"]),
        ({"charge_box_id": "CP-2", "id_tag": "ALICE"}, ["3"]),
    ],
)
def test_the_sessions_page_filters_by_charger_id_tag_and_dates(viewer_client, history, query, expected):
    assert session_ids(viewer_client.get(reverse("sessions"), query)) == expected


def test_a_reversed_date_range_is_refused_with_a_message(viewer_client, history):
    response = viewer_client.get(reverse("sessions"), {"date_from": "2026-03-02", "date_to": "2026-03-01"})
    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


def test_a_malformed_date_is_refused_not_a_crash(viewer_client, history):
    response = viewer_client.get(reverse("sessions-csv"), {"date_from": "yesterday"})
    assert response.status_code == 400 and b"Invalid filter" in response.content


def test_the_csv_export_holds_the_same_filtered_sessions_with_energy_and_duration(viewer_client, history):
    response = viewer_client.get(reverse("sessions-csv"), {"charge_box_id": "CP-1"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["transaction_id"] for row in rows] == ["2", "1"]
    assert rows[0]["energy_wh"] == "12345" and rows[0]["duration_s"] == "1800"
    assert rows[0]["started_at"] == "2026-02-28T12:00:00+00:00"


def test_the_csv_export_defuses_id_tags_a_spreadsheet_would_run_as_formulas(viewer_client, history):
    response = viewer_client.get(reverse("sessions-csv"), {"charge_box_id": "CP-2"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["id_tag"] == "'=HYPERLINK(1)"


def test_sessions_pages_send_anonymous_visitors_to_the_login_form(client):
    for name in ("sessions", "sessions-csv"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/login/" in response["Location"]


# --- Actions on a charger -------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch):
    """The seam we own: gateway.commands.send_call, as the view reaches it."""
    calls = []
    answers = {}

    def fake_send_call_sync(charge_box_id, action, payload, **kwargs):
        calls.append((charge_box_id, action, payload))
        answer = answers.get(action, {"status": "Accepted"})
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr("gateway.views.send_call_sync", fake_send_call_sync)
    return calls, answers


def test_a_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(viewer_client, sent):
    charger_with_session()
    html = viewer_client.get(reverse("charger", args=["CP-1"])).content.decode()
    assert 'id="actions"' not in html and 'name="command"' not in html
    response = viewer_client.post(reverse("charger-action", args=["CP-1"]), {"command": "reset:Hard"})
    assert response.status_code == 403
    assert sent[0] == [] and not AuditEntry.objects.filter(action__startswith="charger.").exists()


def test_an_operator_sees_stop_unlock_reset_availability_and_trigger_buttons(operator_client):
    charger_with_session()
    html = operator_client.get(reverse("charger", args=["CP-1"])).content.decode()
    for value in ("remote_stop:41", "unlock:1", "unlock:2", "reset:Soft", "reset:Hard", "availability:1:Inoperative",
                  "availability:2:Operative", "trigger:StatusNotification", "trigger:MeterValues"):
        assert f'value="{value}"' in html


def test_the_live_part_of_the_charger_page_carries_no_csrf_token_so_it_can_be_cached(operator_client):
    charger_with_session()
    html = operator_client.get(reverse("charger", args=["CP-1"]), HTTP_HX_REQUEST="true").content.decode()
    assert 'value="remote_stop:41"' in html and "csrfmiddlewaretoken" not in html


@pytest.mark.parametrize(
    ("command", "ocpp_action", "payload"),
    [
        ("remote_stop:41", "RemoteStopTransaction", {"transactionId": 41}),
        ("unlock:1", "UnlockConnector", {"connectorId": 1}),
        ("reset:Soft", "Reset", {"type": "Soft"}),
        ("availability:2:Inoperative", "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}),
        ("trigger:MeterValues", "TriggerMessage", {"requestedMessage": "MeterValues"}),
    ],
)
def test_an_operators_action_is_sent_answered_and_audited(operator_client, sent, command, ocpp_action, payload):
    charger_with_session()
    response = operator_client.post(reverse("charger-action", args=["CP-1"]), {"command": command}, follow=True)
    assert sent[0] == [("CP-1", ocpp_action, payload)]
    assert "The charger answered" in response.content.decode() and "Accepted" in response.content.decode()
    entry = AuditEntry.objects.get(action__startswith="charger.")
    assert (entry.actor, entry.action, entry.target, entry.before, entry.after, entry.outcome) == (
        "operator-user", f"charger.call.{ocpp_action}", "CP-1", None, payload, "answered Accepted"
    )


@pytest.mark.parametrize(
    ("error", "outcome", "shown"),
    [
        (ChargerNotConnected("CP-1 is not connected"), "not connected", "Not sent: CP-1 is not connected."),
        (CallTimedOut("no answer"), "timed out", "did not answer soft reset in time"),
        (CallErrorReceived("NotSupported", "no reset here", {}), "CALLERROR NotSupported", "refused soft reset: NotSupported no reset here"),
    ],
)
def test_a_failed_action_tells_the_operator_why_and_is_audited(operator_client, sent, error, outcome, shown):
    charger_with_session()
    sent[1]["Reset"] = error
    response = operator_client.post(reverse("charger-action", args=["CP-1"]), {"command": "reset:Soft"}, follow=True)
    assert shown in response.content.decode()
    assert AuditEntry.objects.get(action__startswith="charger.").outcome == outcome


def test_a_charger_refusal_is_shown_as_an_error(operator_client, sent):
    charger_with_session()
    sent[1]["UnlockConnector"] = {"status": "UnlockFailed"}
    response = operator_client.post(reverse("charger-action", args=["CP-1"]), {"command": "unlock:1"}, follow=True)
    assert 'class="error"' in response.content.decode() and "UnlockFailed" in response.content.decode()


def test_a_forged_action_is_refused_with_a_message_and_nothing_is_sent(operator_client, sent):
    charger_with_session()
    response = operator_client.post(reverse("charger-action", args=["CP-1"]), {"command": "reset:Nuclear"}, follow=True)
    assert "Choose a reset type: Soft or Hard." in response.content.decode()
    assert sent[0] == [] and not AuditEntry.objects.filter(action__startswith="charger.").exists()


def test_an_action_on_an_unknown_charger_is_not_found(operator_client, sent):
    assert operator_client.post(reverse("charger-action", args=["NOPE"]), {"command": "reset:Soft"}).status_code == 404


def test_actions_refuse_get(operator_client):
    charger_with_session()
    assert operator_client.get(reverse("charger-action", args=["CP-1"])).status_code == 405


# --- Live fragments -------------------------------------------------------------------------


def test_an_unchanged_live_fragment_is_answered_304_without_a_body(admin_client, frozen_now):
    charger_with_session()
    first = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and first["ETag"] and "no-cache" in first["Cache-Control"]
    again = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""


def test_a_changed_live_fragment_is_sent_again(admin_client, frozen_now):
    charger_with_session()
    first = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true")
    Charger.objects.filter(charge_box_id="CP-1").update(charger_connected=False)
    again = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200 and again["ETag"] != first["ETag"]


# --- Validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_url", "message"),
    [
        ("ws://bad host/x", "A host name cannot contain spaces."),
        ("ws://" + "h" * 3000 + "/x", "at most 500 characters"),  # the field's length, before the host rule
        ("ws://" + "h" * 300 + "/x", "A host name has at most 253 characters; this one has 300."),
        ("notaurl", "Enter a ws:// or wss:// address, e.g. wss://csms.example.com/ocpp."),
    ],
)
def test_a_chargers_csms_url_with_a_bad_host_is_refused_in_words(admin_client, bad_url, message):
    charger_with_session()
    response = admin_client.post(reverse("charger", args=["CP-1"]), {"upstream_url": bad_url})
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors["upstream_url"])
    assert Charger.objects.get(charge_box_id="CP-1").upstream_url == ""


def test_a_changed_live_fragment_is_sent_gzipped_to_a_browser_that_accepts_it(admin_client, frozen_now):
    import gzip

    charger_with_session()
    plain = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true")
    zipped = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true", HTTP_ACCEPT_ENCODING="gzip, br")
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content)
    assert zipped["ETag"] == "W/" + plain["ETag"]  # the same fragment, other bytes on the wire
    again = admin_client.get(reverse("dashboard"), HTTP_HX_REQUEST="true", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=zipped["ETag"])
    assert again.status_code == 304
