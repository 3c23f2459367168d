"""Meter pages through Django's test client: live list, add/edit validation, detail, history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from gateway.state import Phases
from meters import live
from meters.models import Meter, MeterHistory
from meters.readings import MeterReading, MeterStatus

pytestmark = pytest.mark.django_db

VALID_TCP = {
    "name": "Main meter",
    "model_key": "sdm630",
    "role": "grid",
    "enabled": "on",
    "transport": "tcp",
    "host": "192.168.1.40",
    "port": "502",
    "serial_port": "",
    "baudrate": "9600",
    "parity": "N",
    "stopbits": "1",
    "unit_id": "1",
    "poll_interval_s": "1",
    "stale_after_s": "5",
    "timeout_s": "1",
}
VALID_RTU = {**VALID_TCP, "name": "PV meter", "role": "pv", "transport": "rtu", "host": "", "serial_port": "/dev/ttyUSB0"}


@pytest.fixture(autouse=True)
def fresh_live_store():
    live.clear()
    yield
    live.clear()


@pytest.fixture
def client(client, django_user_model):
    # Adding and editing meters needs the administrator role.
    installer = django_user_model.objects.create(username="installer")
    installer.groups.add(Group.objects.get(name="administrator"))
    client.force_login(installer)
    return client


def make_meter(**fields) -> Meter:
    defaults = {"name": "grid", "model_key": "sdm630", "transport": "tcp", "host": "127.0.0.1"}
    return Meter.objects.create(**{**defaults, **fields})


def reading_at(at, l1=16.0) -> MeterReading:
    return MeterReading(
        measured_at=at, current_a=Phases(l1, 8.5, 4.25), voltage_v=Phases(231.0, 229.5, 230.2),
        power_w=Phases(3696.0, 1950.8, 978.4), total_power_w=6625.2, import_energy_wh=12_345_600.0,
        export_energy_wh=0.0, frequency_hz=50.01,
    )


def test_the_pages_need_a_login(client):
    client.logout()
    response = client.get("/meters/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_empty_list_invites_to_add_the_grid_meter(client):
    response = client.get("/meters/")
    assert response.status_code == 200
    assert "Add the grid meter" in response.content.decode()
    assert 'hx-trigger="every 2s [!document.hidden]' in response.content.decode()


def test_the_list_shows_live_values_and_each_meter_state(client):
    now = timezone.now()
    fresh = make_meter(name="grid")
    stale = make_meter(name="building", role="building", host="10.0.0.2")
    failing = make_meter(name="pv", role="pv", host="10.0.0.3")
    make_meter(name="spare", role="other", host="10.0.0.4", enabled=False)
    make_meter(name="new", role="other", host="10.0.0.5")
    live.put_status(MeterStatus(fresh.pk, "grid", 5.0, reading=reading_at(now)))
    live.put_status(MeterStatus(stale.pk, "building", 5.0, reading=reading_at(now - timedelta(seconds=30)), error="no answer from unit 1 at 10.0.0.2:502", consecutive_failures=30))
    live.put_status(MeterStatus(failing.pk, "pv", 5.0, error="cannot connect to 10.0.0.3:502: Connection refused", consecutive_failures=3))

    response = client.get("/meters/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html  # the partial only
    assert "HX-Request" in response["Vary"]
    assert f'id="meter-{fresh.pk}" data-state="ok"' in html
    assert "16.00 A" in html and "231.0 V" in html and "6,625 W" in html and "12,345.6 kWh" in html and "50.01 Hz" in html
    assert f'id="meter-{stale.pk}" data-state="stale"' in html and "no answer from unit 1 at 10.0.0.2:502" in html
    assert f'id="meter-{failing.pk}" data-state="error"' in html and "Connection refused" in html
    assert 'data-state="disabled"' in html and 'data-state="waiting"' in html


def test_adding_a_tcp_meter(client):
    form = client.get("/meters/add/")
    assert "Eastron SDM630 (v1/v2)" in form.content.decode() and "SunSpec meter" in form.content.decode()
    response = client.post("/meters/add/", VALID_TCP)
    meter = Meter.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/meters/{meter.pk}/"
    assert (meter.transport, meter.host, meter.port, meter.unit_id, meter.role) == ("tcp", "192.168.1.40", 502, 1, "grid")
    assert meter.connection().describe() == "192.168.1.40:502 (Modbus TCP)"


def test_adding_a_serial_meter(client):
    response = client.post("/meters/add/", {**VALID_RTU, "baudrate": "2400", "model_key": "sdm120"})
    assert response.status_code == 302
    meter = Meter.objects.get()
    assert meter.connection().describe() == "/dev/ttyUSB0 at 2400 baud 8N1"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"transport": "rtu", "host": ""}, "serial_port", "needs its port"),
        ({"host": ""}, "host", "needs the host name"),
        ({"host": "http://meter:502"}, "host", "without ws://, tcp:// or any other scheme"),
        ({"host": "127.0.0.1:5020"}, "host", "Enter the port (5020) in the Port field, and here only the host: 127.0.0.1."),
        ({"host": "m" * 254}, "host", "at most 253 characters"),
        ({"unit_id": "0"}, "unit_id", "greater than or equal to 1"),
        ({"unit_id": "248"}, "unit_id", "less than or equal to 247"),
        ({"port": "70000"}, "port", "less than or equal to 65535"),
        ({"stale_after_s": "1"}, "stale_after_s", "longer than the poll interval"),
        ({"poll_interval_s": "fast"}, "poll_interval_s", "Enter a number"),
        ({"model_key": "sdm9999"}, "model_key", "Select a valid choice"),
        ({"parity": "X"}, "parity", "Select a valid choice"),
        ({"baudrate": "1234"}, "baudrate", "Select a valid choice"),
        ({"transport": "rtu", "serial_port": "ttyUSB0 please"}, "serial_port", "device path"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_bad_form_values_get_a_clear_error(client, changes, field, message):
    response = client.post("/meters/add/", {**VALID_TCP, **changes})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Meter.objects.exists()


def test_a_site_has_one_grid_meter(client):
    make_meter(name="grid")
    response = client.post("/meters/add/", {**VALID_TCP, "name": "second grid"})
    assert response.status_code == 400
    assert "already has a grid meter" in response.content.decode()


def test_meters_on_one_rs485_line_share_its_settings_and_not_their_unit_id(client):
    make_meter(name="pv", role="pv", transport="rtu", host="", serial_port="/dev/ttyUSB0", baudrate=9600)
    response = client.post("/meters/add/", {**VALID_RTU, "name": "building", "role": "building", "baudrate": "19200"})
    errors = response.context["form"].errors
    assert "all meters on one RS-485 line must use the same settings" in errors["baudrate"][0]
    assert "already uses unit id 1 on this line" in errors["unit_id"][0]
    response = client.post("/meters/add/", {**VALID_RTU, "name": "building", "role": "building", "unit_id": "2"})
    assert response.status_code == 302


def test_editing_and_deleting_a_meter(client):
    meter = make_meter(name="grid")
    form = client.get(f"/meters/{meter.pk}/edit/")
    assert 'value="grid"' in form.content.decode()
    response = client.post(f"/meters/{meter.pk}/edit/", {**VALID_TCP, "name": "grid", "unit_id": "7"})
    assert response.status_code == 302
    meter.refresh_from_db()
    assert meter.unit_id == 7
    response = client.post(f"/meters/{meter.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/meters/"
    assert not Meter.objects.exists()
    assert client.get(f"/meters/{meter.pk}/").status_code == 404
    assert client.get(f"/meters/{meter.pk}/delete/").status_code == 405


def test_the_detail_page_shows_live_values_and_the_24_hour_history(client):
    now = timezone.now()
    meter = make_meter(name="grid")
    live.put_status(MeterStatus(meter.pk, "grid", 5.0, reading=reading_at(now), poll_duration_s=0.012, requests_per_poll=1))
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    MeterHistory.objects.bulk_create(
        MeterHistory(
            meter=meter,
            start_at=start + timedelta(seconds=10 * index),
            samples=10,
            values={"current_a.l1": [10.0 + index % 5, 9.0, 15.0, 10], "total_power_w": [2300.0, 2000.0, 2600.0, 10]},
        )
        for index in range(720)
    )
    page = client.get(f"/meters/{meter.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "<polyline" in html and "<polygon" in html
    assert 'id="meter-history"' in html and html.count("<tr><td>") == 2  # two full hours
    assert "2,300 W (2,000 W–2,600 W)" in html
    assert "12 ms in 1 request" in html
    live_part = client.get(f"/meters/{meter.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<svg" not in live_part and "16.00 A" in live_part and "50.01 Hz" in live_part


def test_a_meter_whose_map_disappeared_stays_visible_and_editable(client):
    meter = make_meter(name="grid", model_key="removed_custom_map")
    assert "removed_custom_map (map missing)" in client.get("/meters/").content.decode()
    assert "removed_custom_map (map missing)" in client.get(f"/meters/{meter.pk}/edit/").content.decode()
    response = client.post(f"/meters/{meter.pk}/edit/", {**VALID_TCP, "name": "grid", "model_key": "removed_custom_map"})
    assert "No register map" in " ".join(response.context["form"].errors["model_key"])


def test_the_nav_links_to_the_meters_page(client):
    assert '<a href="/meters/">Meters</a>' in client.get("/meters/").content.decode()


def test_the_admin_uses_the_same_validation(client, django_user_model):
    client.force_login(django_user_model.objects.create(username="root", is_staff=True, is_superuser=True))
    assert "Eastron SDM630 (v1/v2)" in client.get("/admin/meters/meter/add/").content.decode()
    response = client.post("/admin/meters/meter/add/", {**VALID_TCP, "host": ""})
    assert response.status_code == 200 and "needs the host name" in response.content.decode()
    assert client.post("/admin/meters/meter/add/", VALID_TCP).status_code == 302
    assert client.get("/admin/meters/meterhistory/").status_code == 200
