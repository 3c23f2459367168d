"""Balancing on the pages and in the admin: site panel, site limits, the charger page's
balancing form, the admin's charger list and its audited bulk actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from gateway.models import Charger
from gateway.templatetags.site_time import format_site_time
from meters import live

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_live():
    live.clear()
    cache.clear()
    yield
    live.clear()


def logged_in(group: str) -> Client:
    user = User.objects.create_user(group, password="a-long-passphrase-1")
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_opens_with_the_live_site_panel(admin_client):
    html = admin_client.get("/").content.decode()
    assert 'hx-get="/balancing/site/panel/"' in html
    assert html.index("site-panel-live") < html.index("dashboard-live")


def test_the_site_panel_says_when_the_failsafe_holds_the_chargers(admin_client):
    SiteSettings.objects.create(pk=1, grid_limit_a=40)
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(charger=charger, limit_a=6, reason="failsafe")
    html = admin_client.get("/balancing/site/panel/").content.decode()
    assert 'id="site-failsafe"' in html and "no grid meter" in html
    assert "40.0 A" in html
    assert "CP-1" in html and "failsafe" in html


def test_the_site_panel_shows_the_setpoints_end_in_the_one_site_time_format(admin_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    SiteSettings.objects.create(pk=1, grid_limit_a=40)
    Setpoint.objects.create(max_import_a=20, valid_until=timezone.now() + timedelta(hours=1), set_by="token:ems", set_at=timezone.now())
    setpoint = Setpoint.objects.get()
    html = admin_client.get("/balancing/site/panel/").content.decode()
    assert f"until {format_site_time(setpoint.valid_until)} (token:ems)" in html


def test_the_dashboard_itself_carries_the_site_panel_before_any_poll(admin_client):
    SiteSettings.objects.create(pk=1, grid_limit_a=40)
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(charger=charger, limit_a=6, reason="failsafe")
    html = admin_client.get("/").content.decode()
    panel = html[html.index('id="site-panel-live"'):html.index('id="dashboard-live"')]
    assert 'id="site-failsafe"' in panel and "no fresh grid reading" in panel
    assert "40.0 A" in panel and "CP-1" in panel


def test_the_charger_page_itself_carries_the_decision_and_the_balancing_form(admin_client):
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(charger=charger, limit_a=8, limit_w=5520, reason="capped by CSMS")
    html = admin_client.get("/chargers/CP-1/").content.decode()
    part = html[html.index('id="balancing"'):]
    assert "8.0 A" in part and "capped by CSMS" in part
    assert 'name="kind"' in part and 'name="csrfmiddlewaretoken"' in part


def test_the_site_panel_asks_for_a_limit_before_anything_else(admin_client):
    assert "No grid limit set" in admin_client.get("/balancing/site/panel/").content.decode()


def test_the_site_page_saves_limits_and_audits_them(admin_client):
    response = admin_client.post(
        "/balancing/site/",
        {"grid_limit_a": "63", "grid_limit_kw": "", "margin_a": "2", "failsafe_current_a": "6", "nominal_voltage_v": "230", "control_period_s": "1"},
    )
    assert response.status_code == 302
    assert SiteSettings.load().grid_limit_a == 63 and SiteSettings.load().margin_a == 2
    assert AuditEntry.objects.get(action="site.update").after == {"grid_limit_a": 63.0, "margin_a": 2.0}


def test_the_site_page_shows_what_is_wrong(admin_client):
    response = admin_client.post(
        "/balancing/site/",
        {"grid_limit_a": "40", "margin_a": "50", "failsafe_current_a": "6", "nominal_voltage_v": "230", "control_period_s": "1"},
    )
    assert response.status_code == 400
    assert "must be smaller than the grid limit" in response.content.decode()
    assert SiteSettings.load().grid_limit_a is None


def test_a_viewer_sees_the_site_page_but_cannot_save_it():
    client = logged_in("viewer")
    assert client.get("/balancing/site/").status_code == 200
    assert client.post("/balancing/site/", {"grid_limit_a": "63"}).status_code == 403


def test_the_charger_page_includes_the_balancing_part_and_its_form_saves(admin_client):
    Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    page = admin_client.get("/chargers/CP-1/").content.decode()
    assert 'id="balancing"' in page and "/balancing/chargers/CP-1/" in page
    # the on/off switch stays the charger settings' checkbox
    assert 'name="balancing_enabled"' in page
    form = admin_client.get("/balancing/chargers/CP-1/").content.decode()
    assert 'name="kind"' in form and 'name="phases"' in form and 'name="enabled"' not in form
    saved = admin_client.post(
        "/balancing/chargers/CP-1/",
        {"kind": "ac1", "phases": "L2", "min_current_a": "6", "max_current_a": "16", "max_power_w": "", "priority": "1", "rate_unit": ""},
    )
    assert saved.status_code == 302 and saved["Location"].endswith("/chargers/CP-1/#balancing")
    balancing = ChargerBalancing.objects.get(charger__charge_box_id="CP-1")
    assert (balancing.kind, balancing.phases, balancing.max_current_a, balancing.priority) == ("ac1", ["L2"], 16, 1)
    assert Charger.objects.get(charge_box_id="CP-1").balancing_enabled is True
    assert AuditEntry.objects.filter(action="charger.balancing.update", target="CP-1").exists()


def test_the_charger_balancing_form_refuses_a_wiring_that_does_not_fit(admin_client):
    Charger.objects.create(charge_box_id="CP-1")
    response = admin_client.post(
        "/balancing/chargers/CP-1/",
        {"kind": "ac1", "phases": "L1 L2", "min_current_a": "6", "max_current_a": "16", "priority": "0", "rate_unit": ""},
    )
    assert response.status_code == 400
    assert "wired to 1 site phase" in response.content.decode()


def test_the_allocation_partial_explains_the_decision(admin_client):
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(charger=charger, limit_a=8, limit_w=5520, reason="capped by CSMS")
    html = admin_client.get("/balancing/chargers/CP-1/allocation/").content.decode()
    assert "8.0 A" in html and "capped by CSMS" in html
    ChargerBalancing.objects.filter(charger=charger).update(controllable=False, not_controllable_reason="answered SetChargingProfile Rejected")
    assert "Not controllable" in admin_client.get("/balancing/chargers/CP-1/allocation/").content.decode()


def test_the_admin_charger_list_shows_balancing_and_filters_by_reason(admin_client):
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(charger=charger, kind="ac1", phases=["L3"], limit_a=10, reason="fair share")
    html = admin_client.get("/admin/gateway/charger/").content.decode()
    assert "ac1 L3" in html and "10.0 A" in html and "fair share" in html
    filtered = admin_client.get("/admin/gateway/charger/?allocation_reason=failsafe").content.decode()
    assert "ac1 L3" not in filtered
    assert "ac1 L3" in admin_client.get("/admin/gateway/charger/?allocation_reason=fair+share").content.decode()


def test_admin_bulk_actions_switch_balancing_and_are_audited(admin_client):
    first = Charger.objects.create(charge_box_id="CP-1")
    second = Charger.objects.create(charge_box_id="CP-2", balancing_enabled=True)
    response = admin_client.post(
        "/admin/gateway/charger/", {"action": "enable_balancing", "_selected_action": [first.pk, second.pk]}
    )
    assert response.status_code == 302
    assert list(Charger.objects.order_by("charge_box_id").values_list("balancing_enabled", flat=True)) == [True, True]
    entries = AuditEntry.objects.filter(action="charger.balancing.update")
    assert [entry.target for entry in entries] == ["CP-1"]
    assert entries[0].after == {"enabled": True}
    admin_client.post("/admin/gateway/charger/", {"action": "disable_balancing", "_selected_action": [first.pk, second.pk]})
    assert not Charger.objects.filter(balancing_enabled=True).exists()
    assert ChargerBalancing.objects.count() == 2


def test_the_admin_refuses_balancing_settings_the_api_would_refuse(admin_client):
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    balancing = ChargerBalancing.objects.create(charger=charger, kind="ac3", max_current_a=16)
    response = admin_client.post(
        f"/admin/balancing/chargerbalancing/{balancing.pk}/change/",
        {"kind": "ac1", "phases": "L1, L2", "min_current_a": "3", "max_current_a": "16", "max_power_w": "", "priority": "0", "rate_unit": ""},
    )
    assert response.status_code == 200 and "wired to 1 site phase" in response.content.decode()
    assert "at least 6 A" in response.content.decode()
    assert ChargerBalancing.objects.get(pk=balancing.pk).kind == "ac3"
    saved = admin_client.post(
        f"/admin/balancing/chargerbalancing/{balancing.pk}/change/",
        {"kind": "ac1", "phases": "L2", "min_current_a": "8", "max_current_a": "16", "max_power_w": "", "priority": "0", "rate_unit": ""},
    )
    assert saved.status_code == 302
    assert ChargerBalancing.objects.get(pk=balancing.pk).phases == ["L2"]
    assert AuditEntry.objects.get(action="charger.balancing.update", target="CP-1").after == {"kind": "ac1", "phases": ["L2"], "min_current_a": 8.0}


def test_the_admin_refuses_a_margin_as_large_as_the_grid_limit(admin_client):
    SiteSettings.load()
    response = admin_client.post(
        "/admin/balancing/sitesettings/1/change/",
        {"grid_limit_a": "40", "grid_limit_kw": "", "margin_a": "40", "failsafe_current_a": "6", "nominal_voltage_v": "230", "control_period_s": "1"},
    )
    assert response.status_code == 200 and "must be smaller than the grid limit" in response.content.decode()
    assert SiteSettings.load().grid_limit_a is None


def test_the_site_panel_tells_the_operator_why_a_charger_is_not_controllable(admin_client):
    SiteSettings.objects.create(pk=1, grid_limit_a=40)
    charger = Charger.objects.create(charge_box_id="CP-1", balancing_enabled=True)
    ChargerBalancing.objects.create(
        charger=charger, controllable=False, not_controllable_reason="answered SetChargingProfile NotSupported", reason="not connected"
    )
    html = admin_client.get("/").content.decode()
    assert "not controllable</strong>: answered SetChargingProfile NotSupported" in html
