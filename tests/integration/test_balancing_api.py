"""The balancing and meter configuration API: fields, rules, rights, audit."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import AuditEntry
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from gateway.models import Charger
from meters.models import Meter

pytestmark = pytest.mark.django_db


def bearer() -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {settings.LINKRAY_API_TOKEN}"}


def put(path, body, client=None, **headers):
    return (client or Client()).put(path, body, content_type="application/json", **(headers or bearer()))


def logged_in(group: str) -> Client:
    user = User.objects.create_user(group, password="a-long-passphrase-1")
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


# --- site --------------------------------------------------------------------------------


def test_put_site_sets_the_grid_limit_and_keeps_the_other_fields():
    SiteSettings.objects.create(pk=1, margin_a=2)
    response = put("/api/site", {"grid_limit_a": 63})
    assert response.status_code == 200
    body = response.json()
    assert body["grid_limit_a"] == 63 and body["margin_a"] == 2 and body["failsafe_current_a"] == 6
    assert body["nominal_voltage_v"] == 230
    assert SiteSettings.load().grid_limit_a == 63


def test_get_site_returns_live_values_and_the_failsafe_without_a_meter():
    put("/api/site", {"grid_limit_a": 40, "margin_a": 2})
    body = Client().get("/api/site", **bearer()).json()
    assert body["grid_current_a"] is None and body["failsafe"] is True
    assert body["limit_in_force_a"] == 40 and body["limit_reason"] == "site limit"
    assert body["setpoint"] is None and body["meter_health"] == "no grid meter"
    assert "capacity_left_a" in body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grid_limit_a": -1}, "grid_limit_a"),
        ({"grid_limit_a": "lots"}, "grid_limit_a"),
        ({"grid_limit_a": 40, "margin_a": 40}, "margin_a"),
        ({"failsafe_current_a": 3}, "failsafe_current_a"),
        ({"nominal_voltage_v": 5}, "nominal_voltage_v"),
        ({"control_period_s": 0}, "control_period_s"),
        ({"grid_limit_kw": 0}, "grid_limit_kw"),
        ({"grid_limt_a": 40}, "grid_limt_a"),
    ],
)
def test_bad_site_settings_are_400_with_a_message_for_the_field(body, field):
    response = put("/api/site", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"
    assert field in response.json()["fields"]
    assert not AuditEntry.objects.filter(action="site.update").exists()


@pytest.mark.parametrize(
    ("body", "field", "innocent"),
    [
        ({"grid_limit_a": -1, "margin_a": 2}, "grid_limit_a", "margin_a"),
        ({"grid_limit_a": 0}, "grid_limit_a", "margin_a"),
    ],
)
def test_a_bad_value_is_blamed_on_its_own_field_only(body, field, innocent):
    put("/api/site", {"grid_limit_a": 63, "margin_a": 2})
    fields = put("/api/site", body).json()["fields"]
    assert field in fields and innocent not in fields


def test_a_bad_charger_maximum_does_not_blame_the_minimum():
    fields = put("/api/chargers/CP-1/balancing", {"kind": "ac3", "min_current_a": 10, "max_current_a": -1}).json()["fields"]
    assert "max_current_a" in fields and "min_current_a" not in fields


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/api/site", {"grid_limit_a": 63}),
        ("put", "/api/site/setpoint", {"max_import_a": 40, "valid_for_s": 60}),
        ("delete", "/api/site/setpoint", None),
        ("put", "/api/chargers/CP-1/balancing", {"enabled": True}),
        ("post", "/api/meters", {"name": "grid"}),
    ],
)
def test_an_anonymous_write_is_401_and_changes_nothing(method, path, body):
    client = Client(enforce_csrf_checks=True)
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 401 and response.json() == {"error": "authentication required"}
    assert not AuditEntry.objects.exists() and SiteSettings.load().grid_limit_a is None


def test_a_staff_session_writes_with_its_csrf_token_only():
    client = logged_in("operator")
    client.handler.enforce_csrf_checks = True
    assert client.put("/api/site", {"grid_limit_a": 63}, content_type="application/json").status_code == 403
    token = client.get("/balancing/site/").cookies["csrftoken"].value
    response = client.put("/api/site", {"grid_limit_a": 63}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and response.json()["grid_limit_a"] == 63


def test_site_changes_are_audited_with_before_and_after():
    put("/api/site", {"grid_limit_a": 63})
    put("/api/site", {"grid_limit_a": 50})
    entry = AuditEntry.objects.filter(action="site.update").order_by("-id").first()
    assert entry.before == {"grid_limit_a": 63} and entry.after == {"grid_limit_a": 50}
    assert entry.actor == "token:bootstrap"


def test_a_viewer_reads_the_site_but_cannot_change_it():
    client = logged_in("viewer")
    assert client.get("/api/site").status_code == 200
    assert put("/api/site", {"grid_limit_a": 63}, client=client, HTTP_X="1").status_code == 403


# --- setpoint ----------------------------------------------------------------------------


def test_a_setpoint_is_set_shown_and_cleared():
    put("/api/site", {"grid_limit_a": 63})
    response = put("/api/site/setpoint", {"max_import_a": 40, "valid_for_s": 600})
    assert response.status_code == 200 and response.json()["setpoint"]["max_import_a"] == 40
    site = Client().get("/api/site", **bearer()).json()
    assert site["setpoint"]["max_import_a"] == 40 and site["limit_in_force_a"] == 40 and site["limit_reason"] == "setpoint"
    cleared = Client().delete("/api/site/setpoint", **bearer())
    assert cleared.status_code == 200 and cleared.json()["cleared"] is True
    assert Client().get("/api/site", **bearer()).json()["setpoint"] is None
    assert list(AuditEntry.objects.filter(action__startswith="site.setpoint").order_by("id").values_list("action", flat=True)) == [
        "site.setpoint.set",
        "site.setpoint.clear",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_import_a": 40, "max_import_kw": 20, "valid_for_s": 60}, "body"),
        ({"valid_for_s": 60}, "body"),
        ({"max_import_a": -1, "valid_for_s": 60}, "max_import_a"),
        ({"max_import_kw": 20, "valid_for_s": 0}, "valid_for_s"),
        ({"max_import_amps": 20, "valid_for_s": 60}, "max_import_amps"),
    ],
)
def test_bad_setpoints_are_400(body, field):
    response = put("/api/site/setpoint", body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Setpoint.objects.exists()


def test_a_setpoint_without_valid_for_s_expires_after_15_minutes():
    response = put("/api/site/setpoint", {"max_import_a": 40})
    assert response.status_code == 200, response.json()
    setpoint = Setpoint.objects.get()
    assert (setpoint.valid_until - setpoint.set_at).total_seconds() == 900


def test_a_viewer_cannot_write_the_setpoint_an_operator_can():
    viewer = logged_in("viewer")
    assert put("/api/site/setpoint", {"max_import_kw": 20, "valid_for_s": 60}, client=viewer, HTTP_X="1").status_code == 403
    operator = logged_in("operator")
    assert put("/api/site/setpoint", {"max_import_kw": 20, "valid_for_s": 60}, client=operator, HTTP_X="1").status_code == 200


# --- charger balancing -------------------------------------------------------------------


def test_a_charger_not_seen_yet_is_registered_with_its_balancing():
    response = put(
        "/api/chargers/CP-NEW/balancing",
        {"enabled": True, "kind": "ac3", "phases": ["L2", "L3", "L1"], "max_current_a": 32, "priority": 1},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["enabled"] is True and body["phases"] == ["L2", "L3", "L1"] and body["priority"] == 1
    charger = Charger.objects.get(charge_box_id="CP-NEW")
    assert charger.balancing_enabled is True
    assert charger.balancing.kind == "ac3" and charger.balancing.min_current_a == 6
    entry = AuditEntry.objects.get(action="charger.balancing.update")
    assert entry.target == "CP-NEW" and entry.outcome == "charger registered"


def test_a_charger_registered_without_enabled_is_balanced_a_known_one_keeps_its_switch():
    assert put("/api/chargers/CP-NEW/balancing", {"kind": "ac1", "phases": ["L2"], "max_current_a": 16}).json()["enabled"] is True
    Charger.objects.create(charge_box_id="CP-OFF")
    assert put("/api/chargers/CP-OFF/balancing", {"kind": "ac1", "max_current_a": 16}).json()["enabled"] is False
    put("/api/chargers/CP-NEW/balancing", {"enabled": False})
    assert put("/api/chargers/CP-NEW/balancing", {"priority": 2}).json()["enabled"] is False


def test_charger_detail_shows_balancing_settings_and_allocation():
    put("/api/chargers/CP-1/balancing", {"kind": "ac1", "phases": ["L2"], "max_current_a": 16})
    ChargerBalancing.objects.filter(charger__charge_box_id="CP-1").update(limit_a=10, reason="fair share")
    detail = Client().get("/api/chargers/CP-1", **bearer()).json()
    assert detail["balancing"]["phases"] == ["L2"]
    assert detail["balancing"]["allocation"]["limit_a"] == 10 and detail["balancing"]["allocation"]["reason"] == "fair share"
    assert detail["allocation"] == detail["balancing"]["allocation"]
    assert Client().get("/api/chargers/CP-1/balancing", **bearer()).json()["kind"] == "ac1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "ac2"}, "kind"),
        ({"kind": "ac1", "phases": ["L1", "L2"]}, "phases"),
        ({"kind": "ac3", "phases": ["L1", "L1", "L2"]}, "phases"),
        ({"kind": "ac3", "phases": ["L4", "L2", "L3"]}, "phases"),
        ({"kind": "ac3", "phases": "L1"}, "phases"),
        ({"min_current_a": 4}, "min_current_a"),
        ({"min_current_a": 20, "max_current_a": 16}, "min_current_a"),
        ({"max_current_a": None}, "max_current_a"),
        ({"kind": "dc", "max_current_a": None}, "max_power_w"),
        ({"rate_unit": "kW"}, "rate_unit"),
        ({"priority": "high"}, "priority"),
        ({"max_curent_a": 16}, "max_curent_a"),
    ],
)
def test_bad_charger_balancing_is_400_with_a_message_for_the_field(body, field):
    response = put("/api/chargers/CP-1/balancing", body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]


def test_a_viewer_cannot_change_a_charger_s_balancing():
    client = logged_in("viewer")
    assert put("/api/chargers/CP-1/balancing", {"enabled": True}, client=client, HTTP_X="1").status_code == 403
    assert not Charger.objects.filter(charge_box_id="CP-1").exists()


def test_disabling_keeps_the_charger_page_s_switch_in_step():
    put("/api/chargers/CP-1/balancing", {"enabled": True})
    put("/api/chargers/CP-1/balancing", {"enabled": False})
    assert Charger.objects.get(charge_box_id="CP-1").balancing_enabled is False
    entry = AuditEntry.objects.filter(action="charger.balancing.update").order_by("-id").first()
    assert entry.before == {"enabled": True} and entry.after == {"enabled": False}


# --- meters ------------------------------------------------------------------------------

GRID = {"name": "grid", "model": "sdm630", "transport": "tcp", "host": "127.0.0.1", "port": 502, "unit_id": 1, "role": "grid", "poll_interval_s": 1}


def test_a_meter_is_created_listed_changed_and_deleted():
    created = Client().post("/api/meters", GRID, content_type="application/json", **bearer())
    assert created.status_code == 201, created.json()
    meter_id = created.json()["id"]
    listed = Client().get("/api/meters", **bearer()).json()["meters"]
    assert listed[0]["name"] == "grid" and listed[0]["model"] == "sdm630" and listed[0]["reading"] is None
    changed = put(f"/api/meters/{meter_id}", {"poll_interval_s": 2})
    assert changed.status_code == 200 and changed.json()["poll_interval_s"] == 2
    assert Client().delete(f"/api/meters/{meter_id}", **bearer()).status_code == 204
    assert not Meter.objects.exists()
    actions = list(AuditEntry.objects.filter(action__startswith="meter.").order_by("id").values_list("action", flat=True))
    assert actions == ["meter.create", "meter.update", "meter.delete"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GRID, "model": "nope"}, "model"),
        ({**GRID, "transport": "rtu"}, "serial_port"),
        ({**GRID, "host": "http://x"}, "host"),
        ({**GRID, "unit_id": 300}, "unit_id"),
        ({**GRID, "poll_interval_s": 10}, "stale_after_s"),
        ({**GRID, "colour": "red"}, "colour"),
    ],
)
def test_bad_meters_get_the_meter_form_s_messages(body, field):
    response = Client().post("/api/meters", body, content_type="application/json", **bearer())
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]


def test_an_rtu_meter_needs_its_serial_line():
    rtu = {"name": "m", "model": "sdm630", "transport": "rtu", "serial_port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "N", "stopbits": 1, "role": "building"}
    assert Client().post("/api/meters", rtu, content_type="application/json", **bearer()).status_code == 201


def test_only_administrators_write_meters():
    client = logged_in("operator")
    assert client.get("/api/meters").status_code == 200
    response = client.post("/api/meters", GRID, content_type="application/json")
    assert response.status_code == 403
    assert put("/api/meters/1", {"poll_interval_s": 2}).status_code == 404
