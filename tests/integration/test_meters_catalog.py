"""Loading maps: the shipped ones must be valid; an installer's own are loaded, or rejected
with the file and field named, without taking the rest down."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from meters.catalog import SHIPPED_MAPS_DIR, catalog, load_catalog, reload_catalog
from meters.registers import MeterMapError, plan_reads

CUSTOM_MAP = {
    "key": "my_meter",
    "name": "My odd meter",
    "manufacturer": "Acme",
    "phases": 3,
    "register_type": "holding",
    "word_order": "little",
    "values": {
        "current_a.l1": {"address": 100, "type": "int32", "unit": "mA"},
        "current_a.l2": {"address": 102, "type": "int32", "unit": "mA"},
        "current_a.l3": {"address": 104, "type": "int32", "unit": "mA"},
        "total_power_w": {"address": "0x006A", "type": "float32", "unit": "kW", "word_order": "big"},
    },
}


@pytest.fixture
def maps_dir(tmp_path):
    yield tmp_path
    reload_catalog()  # back to the real settings' catalog


def test_every_shipped_map_is_valid_and_known():
    maps = load_catalog(SHIPPED_MAPS_DIR, None)
    assert maps.errors == ()
    assert sorted(maps.maps) == ["abb_b2x", "em24", "em24_e1", "em340", "iem3155", "pac2200", "sdm120", "sdm630", "sdm72dm", "sunspec"]
    for meter_map in maps.maps.values():
        assert meter_map.source.endswith(f"{meter_map.key}.json")


def test_a_custom_map_is_loaded_beside_the_shipped_ones(maps_dir):
    (maps_dir / "my_meter.json").write_text(json.dumps(CUSTOM_MAP))
    with override_settings(LINKRAY_METER_MAPS_DIR=maps_dir):
        reload_catalog()
        meter_map = catalog().get("my_meter")
    assert meter_map is not None and catalog().get("sdm630") is not None
    assert [(r.register_type, r.address, r.count) for r in plan_reads(meter_map)] == [("holding", 100, 8)]  # contiguous: one request


def test_broken_custom_maps_are_listed_and_skipped(maps_dir, caplog):
    (maps_dir / "good.json").write_text(json.dumps(CUSTOM_MAP))
    (maps_dir / "syntax.json").write_text('{"key": "x",')
    (maps_dir / "typo.json").write_text(json.dumps({**CUSTOM_MAP, "key": "typo", "values": {**CUSTOM_MAP["values"], "current_a.l1": {"address": 1, "type": "float16", "unit": "A"}}}))
    (maps_dir / "dupe.json").write_text(json.dumps(CUSTOM_MAP))
    (maps_dir / "binary.json").write_bytes(b"\xff\xfe\x00")
    maps = load_catalog(SHIPPED_MAPS_DIR, maps_dir)
    assert "my_meter" in maps.maps and "typo" not in maps.maps
    errors = "\n".join(maps.errors)
    assert "syntax.json: invalid JSON at line 1" in errors
    assert "typo.json: values.current_a.l1.type: 'float16': expected one of int16" in errors
    assert "good.json" in errors and "already used by" in errors  # dupe.json sorts first
    assert "binary.json: not UTF-8 text" in errors
    assert any(r.getMessage().startswith("meter_map_rejected path=") for r in caplog.records)


def test_the_meters_page_lists_broken_custom_maps(maps_dir, client, django_user_model, db):
    (maps_dir / "typo.json").write_text('{"key": "typo"}')
    installer = django_user_model.objects.create(username="installer")
    installer.groups.add(Group.objects.get(name="administrator"))
    client.force_login(installer)
    with override_settings(LINKRAY_METER_MAPS_DIR=maps_dir):
        reload_catalog()
        html = client.get("/meters/").content.decode()
    assert 'id="map-errors"' in html and "typo.json: name: is required" in html


def test_a_broken_shipped_map_stops_startup(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"key": "bad"}))
    with pytest.raises(MeterMapError, match="bad.json: name: is required"):
        load_catalog(tmp_path, None)


@pytest.mark.parametrize(
    ("key", "requests"),
    [
        ("sdm630", [("input", 0, 76)]),
        ("sdm72dm", [("input", 0, 76)]),
        ("sdm120", [("input", 0, 14), ("input", 70, 6)]),  # 2400 baud: skipping the gap is faster
        ("em24", [("input", 0, 94)]),
        ("em24_e1", [("input", 0, 80)]),
        ("em340", [("input", 0, 80)]),
        ("abb_b2x", [("holding", 0x5000, 8), ("holding", 0x5B00, 45)]),
        ("iem3155", [("holding", 0x0BB7, 62), ("holding", 0x0C25, 2), ("holding", 0x0C83, 8)]),
        ("pac2200", [("input", 1, 66), ("input", 801, 12)]),
        ("sunspec", [("holding", 40070 + 3, 52)]),  # offsets 3 (AphA) to 54 (TotWh_SF)
    ],
)
def test_each_shipped_map_is_read_in_as_few_requests_as_it_allows(key, requests):
    meter_map = catalog().maps[key]
    if meter_map.is_sunspec:
        meter_map = meter_map.at_sunspec_model(203, 40070)
    plan = plan_reads(meter_map)
    assert [(r.register_type, r.address, r.count) for r in plan] == requests
    assert all(r.count <= meter_map.max_registers_per_request for r in plan)
    if meter_map.manufacturer == "Eastron":
        assert meter_map.max_registers_per_request == 80
