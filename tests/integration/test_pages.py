"""The operator's pages and the admin, through the Django test client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from gateway import selectors
from gateway.forms import ChargerSettingsForm
from gateway.models import (
    AuthorizationCacheEntry,
    Charger,
    GatewaySettings,
    JournalEntry,
    QueuedMessage,
    TransactionRecord,
)
from gateway.state import ChargerState, ConnectorState, InstalledProfile, MeterSnapshot, Phases, Transaction

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
STATUS_RAW = '[2,"q-1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging"}]'


@pytest.fixture
def frozen_now(monkeypatch):
    """The pages compute outage durations from the clock; pin it so texts are exact."""
    monkeypatch.setattr("gateway.views.timezone.now", lambda: NOW)
    return NOW


def charging_state(charge_box_id: str) -> dict:
    state = ChargerState(
        charge_box_id,
        vendor="Acme",
        model="Wallbox 22",
        serial_number="SN-42",
        firmware_version="1.2.3",
        boot={"chargePointVendor": "Acme", "chargePointModel": "Wallbox 22", "iccid": "8949"},
        boot_status="Accepted",
        heartbeat_interval_s=300,
        last_boot_at=NOW - timedelta(hours=1),
        charger_connected=True,
        csms_state="down",
        csms_down_since=NOW - timedelta(seconds=192),
    )
    state.connectors[1] = ConnectorState(
        1,
        status="Charging",
        meter=MeterSnapshot(
            current_a=Phases(15.5, 15.9, 16.0),
            voltage_v=Phases(230, 231, 229),
            power_w=11040,
            energy_wh=12345,
            measured_at=NOW,
        ),
    )
    state.connectors[2] = ConnectorState(2, status="Faulted", error_code="GroundFailure")
    state.transactions[2_000_000_001] = Transaction(2_000_000_001, 1, "TAG-OPEN", 1000, NOW - timedelta(minutes=10))
    state.csms_profiles.append(
        InstalledProfile(1, 77, 2, "TxProfile", 2_000_000_001, {"chargingSchedule": {"chargingRateUnit": "A"}})
    )
    return state.to_dict()


def make_charger(charge_box_id: str = "CP-1", **fields) -> Charger:
    defaults = {
        "charger_connected": True,
        "csms_state": Charger.CsmsState.DOWN,
        "csms_down_since": NOW - timedelta(seconds=192),
        "last_seen_at": NOW,
        "vendor": "Acme",
        "model": "Wallbox 22",
        "serial_number": "SN-42",
        "firmware_version": "1.2.3",
        "state": charging_state(charge_box_id),
    }
    return Charger.objects.create(charge_box_id=charge_box_id, **{**defaults, **fields})


def queue_message(charge_box_id: str, action: str = "StatusNotification", raw: str = STATUS_RAW, **fields) -> QueuedMessage:
    return QueuedMessage.objects.create(
        charge_box_id=charge_box_id,
        unique_id=fields.pop("unique_id", "q-1"),
        action=action,
        raw=raw,
        received_at=NOW - timedelta(seconds=30),
        **fields,
    )


def test_duration_text_shows_the_two_largest_units():
    assert selectors.duration_text(0) == "0 s"
    assert selectors.duration_text(45.9) == "45 s"
    assert selectors.duration_text(192) == "3 min 12 s"
    assert selectors.duration_text(3600) == "1 h"
    assert selectors.duration_text(7500) == "2 h 5 min"
    assert selectors.duration_text(86400 + 3 * 3600 + 59) == "1 d 3 h"
    assert selectors.duration_text(None) == ""


@pytest.mark.parametrize("url", ["/", "/chargers/CP-1/", "/chargers/CP-1/queue/", "/settings/gateway/"])
def test_pages_send_anonymous_visitors_to_the_login_form(client, url):
    make_charger()
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_login_form_leads_to_the_dashboard(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="s3cret-pass")
    user.groups.add(Group.objects.get(name="operator"))
    wrong = client.post(reverse("login"), {"username": "operator", "password": "nope"})
    assert wrong.status_code == 200 and b"Wrong user name or password." in wrong.content
    response = client.post(reverse("login"), {"username": "operator", "password": "s3cret-pass"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert b"Chargers" in response.content


def test_dashboard_lists_chargers_with_csms_state_down_duration_and_queue(admin_client, frozen_now):
    make_charger("CP-1")
    make_charger("CP-2", csms_state=Charger.CsmsState.CONNECTED, csms_down_since=None, state={})
    make_charger("CP-3", charger_connected=False, csms_state=Charger.CsmsState.CLOSED, csms_down_since=None)
    queue_message("CP-1", unique_id="a")
    queue_message("CP-1", unique_id="b")
    queue_message("CP-3", unique_id="c")

    response = admin_client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    rows = {match[0]: match[1] for match in re.findall(r'<tr data-charge-box-id="([^"]+)">(.*?)</tr>', html, re.S)}
    assert list(rows) == ["CP-1", "CP-2", "CP-3"]
    assert "Down" in rows["CP-1"] and "down for 3 min 12 s" in rows["CP-1"]
    assert "2 queued" in rows["CP-1"]
    assert 'href="/chargers/CP-1/"' in rows["CP-1"]
    assert "Charging" in rows["CP-1"] and "15.5 / 15.9 / 16.0 A" in rows["CP-1"] and "11.04 kW" in rows["CP-1"]
    assert "GroundFailure" in rows["CP-1"]
    assert "Connected" in rows["CP-2"] and "down for" not in rows["CP-2"]
    assert "Offline" in rows["CP-3"] and "Closed (charger offline)" in rows["CP-3"] and "1 queued" in rows["CP-3"]
    summary = response.context["summary"]
    assert summary == {"chargers": 3, "chargers_connected": 2, "csms_down": 1, "queued_messages": 3}
    assert 'hx-trigger="every 2s [!document.hidden]' in html


def test_dashboard_says_so_when_no_charger_has_connected(admin_client):
    response = admin_client.get("/")
    assert b"No charger has connected yet" in response.content


def test_htmx_poll_of_the_dashboard_returns_only_the_live_fragment(admin_client, frozen_now):
    make_charger("CP-1")
    queue_message("CP-1")

    response = admin_client.get("/", headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "<header" not in html
    assert html.lstrip().startswith('<div class="cards" id="site-summary">')
    assert '<table id="chargers"' in html and "down for 3 min 12 s" in html and "1 queued" in html
    assert "HX-Request" in response["Vary"]


def test_charger_page_shows_identity_legs_connectors_transactions_profiles_queue_and_journal(admin_client, frozen_now):
    charger = make_charger("CP-1")
    TransactionRecord.objects.create(
        charger=charger,
        connector_id=1,
        transaction_id=2_000_000_001,
        csms_transaction_id=None,
        id_tag="TAG-OPEN",
        meter_start_wh=1000,
        started_at=NOW - timedelta(minutes=10),
        started_offline=True,
    )
    TransactionRecord.objects.create(
        charger=charger,
        connector_id=1,
        transaction_id=41,
        csms_transaction_id=41,
        id_tag="TAG-DONE",
        meter_start_wh=0,
        meter_stop_wh=7000,
        started_at=NOW - timedelta(hours=3),
        stopped_at=NOW - timedelta(hours=2),
        stop_reason="Local",
    )
    queue_message("CP-1", unique_id="q-1")
    queue_message(
        "CP-1", action="StartTransaction", raw='[2,"q-2","StartTransaction",{"connectorId":1,"idTag":"' + "X" * 400 + '"}]',
        unique_id="q-2", local_transaction_id=2_000_000_001, attempts=3,
    )
    queue_message("CP-OTHER", action="Heartbeat", raw='[2,"h","Heartbeat",{}]', unique_id="other")
    JournalEntry.objects.create(
        at=NOW, charge_box_id="CP-1", direction="charger>linkray", message_type=2, unique_id="q-1",
        action="StatusNotification", raw=STATUS_RAW,
    )

    response = admin_client.get("/chargers/CP-1/")

    assert response.status_code == 200
    html = response.content.decode()
    detail = response.context["detail"]
    # Identity and boot data.
    for text in ("Acme", "Wallbox 22", "SN-42", "1.2.3", "iccid", "8949", "every 300 s"):
        assert text in html
    # Both legs, with the outage's length.
    assert "down for 3 min 12 s" in html and "2 messages waiting for replay" in html
    # Connectors and their latest meter values.
    assert "15.5 / 15.9 / 16.0 A" in html and "230 / 231 / 229 V" in html and "12.345 kWh" in html
    assert "GroundFailure" in html
    # Open transaction with its local id, no CSMS id yet, started offline; the finished one below.
    assert [tx.transaction_id for tx in detail["open_transactions"]] == [2_000_000_001]
    assert "2000000001" in html and "not yet assigned" in html and "started offline" in html
    assert [tx.transaction_id for tx in detail["recent_transactions"]] == [41]
    assert "TAG-DONE" in html and "0 → 7000 Wh" in html
    # CSMS profile.
    assert "TxProfile" in html and ">77<" in html
    # The replay queue, this charger's only, in replay order, frames shortened.
    assert [row["unique_id"] for row in detail["queue"]] == ["q-1", "q-2"]
    assert "StatusNotification" in html and "StartTransaction" in html and "local tx 2000000001" in html
    assert "X" * 400 not in html and "…" in html
    assert "CP-OTHER" not in html
    # The journal.
    assert "charger → linkray" in html
    # The settings form.
    assert 'name="upstream_url"' in html and 'name="balancing_enabled"' in html and "csrfmiddlewaretoken" in html


def test_charger_page_lists_at_most_200_queued_messages_and_links_the_whole_queue(admin_client):
    make_charger("CP-1")
    QueuedMessage.objects.bulk_create(
        QueuedMessage(charge_box_id="CP-1", unique_id=str(n), action="MeterValues", raw="[]", received_at=NOW)
        for n in range(205)
    )
    response = admin_client.get("/chargers/CP-1/")
    assert len(response.context["detail"]["queue"]) == 200
    assert "205 waiting, first 200 shown" in response.content.decode()
    assert 'href="/chargers/CP-1/queue/"' in response.content.decode()


def test_htmx_poll_of_the_charger_page_returns_only_its_live_part(admin_client):
    make_charger("CP-1")
    queue_message("CP-1")
    response = admin_client.get("/chargers/CP-1/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html and 'name="upstream_url"' not in html
    assert 'id="legs"' in html and "StatusNotification" in html


def test_queue_page_shows_every_queued_message_page_by_page(admin_client):
    make_charger("CP-1")
    QueuedMessage.objects.bulk_create(
        QueuedMessage(charge_box_id="CP-1", unique_id=f"u-{n}", action="MeterValues", raw="[]", received_at=NOW)
        for n in range(250)
    )
    first = admin_client.get("/chargers/CP-1/queue/")
    second = admin_client.get("/chargers/CP-1/queue/?page=2")
    assert first.status_code == second.status_code == 200
    assert "250 messages waiting for replay" in first.content.decode()
    assert [row["unique_id"] for row in first.context["rows"]][:2] == ["u-0", "u-1"]
    assert len(first.context["rows"]) == 200 and len(second.context["rows"]) == 50
    assert second.context["rows"][-1]["unique_id"] == "u-249"
    partial = admin_client.get("/chargers/CP-1/queue/?page=2", headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode() and "u-249" in partial.content.decode()


@pytest.mark.parametrize("charge_box_id", ["Lot A#1 ä?x=1", "site/CP%2F7"])
def test_chargers_with_escaped_characters_in_their_id_have_working_pages(admin_client, charge_box_id):
    make_charger(charge_box_id)
    queue_message(charge_box_id)

    dashboard = admin_client.get("/")
    charger_url = reverse("charger", args=[charge_box_id])
    assert f'href="{charger_url}"' in dashboard.content.decode()

    page = admin_client.get(charger_url)
    assert page.status_code == 200 and page.context["detail"]["charge_box_id"] == charge_box_id
    queue = admin_client.get(reverse("charger-queue", args=[charge_box_id]))
    assert queue.status_code == 200 and queue.context["count"] == 1
    saved = admin_client.post(charger_url, {"upstream_url": "ws://127.0.0.1:9/ocpp", "balancing_enabled": "on"})
    assert saved.status_code == 302 and saved["Location"] == charger_url
    assert Charger.objects.get(charge_box_id=charge_box_id).upstream_url == "ws://127.0.0.1:9/ocpp"


def test_a_charger_page_for_an_id_with_a_nul_character_is_not_found_before_any_query(admin_client):
    from gateway.urls import ChargeBoxIdConverter

    with pytest.raises(ValueError):
        ChargeBoxIdConverter().to_python("CP\x001")  # PostgreSQL would refuse the lookup
    assert admin_client.get("/chargers/CP%001/").status_code == 404
    assert admin_client.get("/balancing/chargers/CP%001/").status_code == 404


def test_unknown_charger_page_is_not_found(admin_client):
    assert admin_client.get("/chargers/NOPE/").status_code == 404
    assert admin_client.get("/chargers/NOPE/queue/").status_code == 404


def test_charger_settings_save_a_valid_upstream_url_and_balancing(admin_client):
    make_charger("CP-1")

    response = admin_client.post(
        "/chargers/CP-1/", {"upstream_url": " wss://csms.example.com/ocpp ", "balancing_enabled": "on"}, follow=True
    )

    assert response.redirect_chain == [("/chargers/CP-1/", 302)]
    assert "Settings of CP-1 saved." in response.content.decode()
    charger = Charger.objects.get(charge_box_id="CP-1")
    assert charger.upstream_url == "wss://csms.example.com/ocpp" and charger.balancing_enabled is True


def test_charger_settings_accept_a_blank_upstream_url_as_the_site_default(admin_client):
    make_charger("CP-1", upstream_url="ws://old.example/ocpp", balancing_enabled=True)
    response = admin_client.post("/chargers/CP-1/", {"upstream_url": ""})
    assert response.status_code == 302
    charger = Charger.objects.get(charge_box_id="CP-1")
    assert charger.upstream_url == "" and charger.balancing_enabled is False


@pytest.mark.parametrize("bad_url", ["http://x", "ws://", "wss://csms.example.com/ocpp?token=1", "csms.example.com"])
def test_charger_settings_reject_a_non_websocket_upstream_url_with_a_field_error(admin_client, bad_url):
    # http://x, no host, a query (credentials belong in headers), no scheme.
    make_charger("CP-1", upstream_url="ws://kept.example/ocpp")

    response = admin_client.post("/chargers/CP-1/", {"upstream_url": bad_url, "balancing_enabled": "on"})

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["upstream_url"]
    assert 'class="errorlist' in response.content.decode()
    assert errors["upstream_url"][0].startswith("Enter ")  # what to type, not `upstream URL=...: expected`
    charger = Charger.objects.get(charge_box_id="CP-1")
    assert charger.upstream_url == "ws://kept.example/ocpp" and charger.balancing_enabled is False


def test_charger_settings_form_leaves_the_live_columns_the_runtime_wrote_meanwhile():
    charger = make_charger("CP-1")  # the page loads the row...
    Charger.objects.filter(pk=charger.pk).update(  # ...the charger disconnects...
        charger_connected=False, csms_state=Charger.CsmsState.CLOSED, csms_down_since=None, state={"flushed": True}
    )
    form = ChargerSettingsForm({"upstream_url": "ws://new.example/ocpp", "balancing_enabled": "on"}, instance=charger)
    assert form.is_valid()
    form.save()  # ...and the operator saves the page's form.

    charger.refresh_from_db()
    assert charger.upstream_url == "ws://new.example/ocpp" and charger.balancing_enabled
    assert charger.charger_connected is False and charger.csms_state == "closed" and charger.state == {"flushed": True}


def test_gateway_settings_form_saves(admin_client):
    response = admin_client.get("/settings/gateway/")
    assert response.status_code == 200
    assert 'name="offline_authorization"' in response.content.decode()

    response = admin_client.post("/settings/gateway/", {"offline_authorization": "reject"}, follow=True)

    assert response.redirect_chain == [("/settings/gateway/", 302)]
    assert "Gateway settings saved." in response.content.decode()
    settings = GatewaySettings.load()
    assert settings.accept_unknown_chargers is False and settings.offline_authorization == "reject"
    assert GatewaySettings.objects.count() == 1


def test_gateway_settings_form_rejects_an_unknown_offline_policy(admin_client):
    response = admin_client.post(
        "/settings/gateway/", {"accept_unknown_chargers": "on", "offline_authorization": "sometimes"}
    )
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["offline_authorization"]
    assert "Select a valid choice" in response.content.decode()
    assert GatewaySettings.load().offline_authorization == GatewaySettings.OfflineAuthorization.CACHE


def test_gateway_settings_page_lists_the_authorization_cache(admin_client):
    AuthorizationCacheEntry.objects.create(id_tag="TAG-OK", status="Accepted", expiry_date=NOW + timedelta(days=1))
    AuthorizationCacheEntry.objects.create(id_tag="TAG-BAD", status="Blocked")
    html = admin_client.get("/settings/gateway/").content.decode()
    assert "2 idTags" in html
    assert html.index("TAG-BAD") < html.index("TAG-OK")  # sorted by idTag
    assert "Blocked" in html and "2026-03-02 12:00:00" in html


@pytest.mark.parametrize(
    "model", [Charger, TransactionRecord, JournalEntry, QueuedMessage, AuthorizationCacheEntry, GatewaySettings]
)
def test_admin_changelist_loads_for_each_gateway_model(admin_client, model):
    charger = make_charger("CP-1")
    TransactionRecord.objects.create(charger=charger, connector_id=1, transaction_id=1, id_tag="T", started_at=NOW)
    JournalEntry.objects.create(at=NOW, charge_box_id="CP-1", direction="charger>csms", raw="[]")
    queue_message("CP-1")
    AuthorizationCacheEntry.objects.create(id_tag="T", status="Accepted")
    GatewaySettings.load()

    url = reverse(f"admin:gateway_{model._meta.model_name}_changelist")
    response = admin_client.get(url)

    assert response.status_code == 200
    change = admin_client.get(reverse(f"admin:gateway_{model._meta.model_name}_change", args=[model.objects.first().pk]))
    assert change.status_code == 200


def test_admin_journal_filters_by_direction_and_charger(admin_client):
    JournalEntry.objects.create(at=NOW, charge_box_id="CP-1", direction="charger>csms", action="Heartbeat", raw="[]")
    JournalEntry.objects.create(at=NOW, charge_box_id="CP-2", direction="csms>charger", action="Reset", raw="[]")
    url = reverse("admin:gateway_journalentry_changelist")
    response = admin_client.get(url, {"direction": "csms>charger"})
    assert response.status_code == 200
    assert [entry.action for entry in response.context["cl"].result_list] == ["Reset"]
    response = admin_client.get(url, {"charge_box_id": "CP-1"})
    assert [entry.action for entry in response.context["cl"].result_list] == ["Heartbeat"]


def test_admin_charger_save_writes_only_what_the_operator_changed(admin_client):
    charger = make_charger("CP-1")
    url = reverse("admin:gateway_charger_change", args=[charger.pk])
    admin_client.get(url)
    Charger.objects.filter(pk=charger.pk).update(charger_connected=False, csms_state=Charger.CsmsState.CLOSED)

    response = admin_client.post(url, {"upstream_url": "ws://a.example/ocpp", "balancing_enabled": "on"})

    assert response.status_code == 302
    charger.refresh_from_db()
    assert charger.upstream_url == "ws://a.example/ocpp" and charger.balancing_enabled
    assert charger.charger_connected is False and charger.csms_state == "closed"


def test_admin_keeps_gateway_written_rows_read_only(admin_client):
    queued = queue_message("CP-1")
    response = admin_client.post(reverse("admin:gateway_queuedmessage_change", args=[queued.pk]), {"attempts": 0})
    assert response.status_code == 403
    assert admin_client.get(reverse("admin:gateway_queuedmessage_add")).status_code == 403
    assert admin_client.get(reverse("admin:gateway_journalentry_add")).status_code == 403
