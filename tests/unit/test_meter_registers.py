"""meters.registers: map validation, the read plan, decode and encode. Pure: no Django, no
sockets."""

from __future__ import annotations

import ast
import copy
import math
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meters.readings import QUANTITIES
from meters.registers import (
    DATA_TYPES,
    MAX_REGISTERS_PER_REQUEST,
    DecodeError,
    MeterMapError,
    ReadRequest,
    decode,
    encode,
    is_sunspec_marker,
    pack_words,
    parse_meter_map,
    plan_one_per_value,
    plan_reads,
    registers_from_responses,
    sunspec_layout,
    sunspec_model_header,
    unpack_words,
)

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def base_map(**changes) -> dict:
    data = {
        "key": "test",
        "name": "Test meter",
        "manufacturer": "Acme",
        "phases": 3,
        "register_type": "input",
        "values": {
            "current_a.l1": {"address": 6, "type": "float32", "unit": "A"},
            "current_a.l2": {"address": 8, "type": "float32", "unit": "A"},
            "current_a.l3": {"address": 10, "type": "float32", "unit": "A"},
        },
    }
    data.update(changes)
    return data


def with_value(quantity: str, spec: dict, **changes) -> dict:
    data = base_map(**changes)
    data["values"] = {**data["values"], quantity: spec}
    return data


def words_at(address: int, words: list[int], register_type: str = "input") -> dict[tuple[str, int], int]:
    return {(register_type, address + offset): word for offset, word in enumerate(words)}


def zeros(meter_map) -> dict[tuple[str, int], int]:
    image = {}
    for request in plan_reads(meter_map):
        image.update(words_at(request.address, [0] * request.count, request.register_type))
    return image


# --- validation ------------------------------------------------------------------------------


def test_a_minimal_map_gets_the_defaults():
    meter_map = parse_meter_map(base_map(), "test.json")
    assert (meter_map.key, meter_map.phases, meter_map.max_registers_per_request, meter_map.max_gap_registers) == ("test", 3, 125, 0)
    assert meter_map.values[0].word_order == "big" and meter_map.values[0].register_type == "input"
    assert meter_map.serial_defaults.baudrate == 9600 and not meter_map.serial_defaults.verified


def test_addresses_may_be_written_in_hex_as_in_the_manuals():
    meter_map = parse_meter_map(with_value("total_power_w", {"address": "0x0034", "type": "float32", "unit": "W"}), "t.json")
    assert [value.address for value in meter_map.values if value.quantity == "total_power_w"] == [52]


BAD_MAPS = [
    ([], "test.json: expected a JSON object"),
    (base_map(key="Bad Key!"), "key: 'Bad Key!': use 1-40 lower-case"),
    ({k: v for k, v in base_map().items() if k != "name"}, "name: is required"),
    (base_map(word_ordr="little"), "unknown field(s) 'word_ordr'"),
    (base_map(phases=4), "phases: 4: expected a whole number 1-3"),
    (base_map(phases=True), "phases: True: expected a whole number"),
    (base_map(register_type="coil"), "register_type: 'coil': expected one of input, holding"),
    (base_map(values={}), "values: expected an object"),
    (base_map(max_registers_per_request=200), "max_registers_per_request: 200: expected a whole number 4-125"),
    (base_map(not_available="maybe"), "not_available: 'maybe'"),
    (with_value("current_a.l4", {"address": 1, "type": "int16", "unit": "A"}), "values.current_a.l4: unknown quantity"),
    (
        base_map(phases=1, values={"current_a.l1": {"address": 0, "type": "int16", "unit": "A"}, "voltage_v.l2": {"address": 1, "type": "int16", "unit": "V"}}),
        "values.voltage_v.l2: the map declares 1 phase",
    ),
    (with_value("voltage_v.l1", {"address": 1, "type": "float16", "unit": "V"}), "values.voltage_v.l1.type: 'float16': expected one of int16"),
    (with_value("voltage_v.l1", {"address": 1, "type": "float32"}), "values.voltage_v.l1.unit: is required"),
    (with_value("current_a.l1", {"address": 1, "type": "float32", "unit": "kWh"}), "values.current_a.l1.unit: 'kWh': expected one of A, mA"),
    (with_value("voltage_v.l1", {"address": 1, "type": "int16", "unit": "V", "scale": 0}), "values.voltage_v.l1.scale: 0: expected a positive number"),
    (with_value("voltage_v.l1", {"address": 1, "type": "int16", "unit": "V", "scale": "0.1"}), "values.voltage_v.l1.scale: '0.1'"),
    (with_value("voltage_v.l1", {"address": 1, "type": "int16", "unit": "V", "scale_factor": "V_SF"}), "scale_factor: 'V_SF' is not declared"),
    (with_value("voltage_v.l1", {"address": 1, "type": "float32", "unit": "V", "scale_factor": "V_SF"}, scale_factors={"V_SF": {"address": 5}}), "floats take no scale factor"),
    (with_value("voltage_v.l1", {"address": 70000, "type": "int16", "unit": "V"}), "values.voltage_v.l1.address: 70000: expected a 0-based register address"),
    (with_value("voltage_v.l1", {"address": "0xZZ", "type": "int16", "unit": "V"}), "address: '0xZZ'"),
    (with_value("voltage_v.l1", {"address": -1, "type": "int16", "unit": "V"}), "address: -1"),
    (with_value("voltage_v.l1", {"address": 65534, "type": "float64", "unit": "V"}), "runs past register 65535"),
    (with_value("voltage_v.l1", {"address": 1, "type": "int16", "unit": "V", "adress": 2}), "unknown field(s) 'adress'"),
    (base_map(values={"current_a.l1": {"address": 0, "type": "int16", "unit": "A"}}), "current_a.l2 is required"),
    (base_map(serial_defaults={"baudrate": 1234}), "serial_defaults.baudrate: 1234"),
    (base_map(serial_defaults={"parity": "X"}), "serial_defaults.parity: 'X'"),
    (base_map(serial_defaults={"unit_id": 0}), "serial_defaults.unit_id: 0: expected a whole number 1-247"),
    (base_map(serial_defaults={"verified": "yes"}), "serial_defaults.verified: expected true or false"),
    (base_map(sunspec={"models": []}), "sunspec.models: expected a non-empty list"),
    (base_map(sunspec=[203]), 'sunspec: expected {"models"'),
    (base_map(sources="mbmd"), "sources: expected a list of strings"),
]


@pytest.mark.parametrize(("data", "message"), BAD_MAPS)
def test_a_bad_map_is_refused_naming_the_file_and_field(data, message):
    with pytest.raises(MeterMapError) as error:
        parse_meter_map(data, "test.json")
    assert str(error.value).startswith("test.json: ")
    assert message in str(error.value)


def test_a_value_and_its_scale_factor_must_share_a_request():
    data = base_map(
        register_type="holding",
        max_registers_per_request=8,
        scale_factors={"A_SF": {"address": 40}},
        values={
            "current_a.l1": {"address": 0, "type": "int16", "unit": "A", "scale_factor": "A_SF"},
            "current_a.l2": {"address": 1, "type": "int16", "unit": "A", "scale_factor": "A_SF"},
            "current_a.l3": {"address": 2, "type": "int16", "unit": "A", "scale_factor": "A_SF"},
        },
    )
    with pytest.raises(MeterMapError, match="values.current_a.l1.scale_factor: the value and its scale factor would be read in different requests"):
        parse_meter_map(data, "t.json")


# --- read plan -----------------------------------------------------------------------------


def eastron_like(max_gap: int, max_per_request: int = 80) -> dict:
    values = {f"current_a.l{n}": {"address": 4 + 2 * n, "type": "float32", "unit": "A"} for n in (1, 2, 3)}
    values["total_power_w"] = {"address": 52, "type": "float32", "unit": "W"}
    values["frequency_hz"] = {"address": 70, "type": "float32", "unit": "Hz"}
    values["import_energy_wh"] = {"address": 72, "type": "float32", "unit": "kWh"}
    return base_map(values=values, max_gap_registers=max_gap, max_registers_per_request=max_per_request)


def spans(requests) -> list[tuple[int, int]]:
    return [(request.address, request.count) for request in requests]


def test_gaps_up_to_the_limit_are_read_through_in_one_request():
    assert spans(plan_reads(parse_meter_map(eastron_like(max_gap=60), "t"))) == [(6, 68)]


def test_without_gaps_only_contiguous_registers_share_a_request():
    meter_map = parse_meter_map(eastron_like(max_gap=60), "t")
    assert spans(plan_reads(meter_map, allow_gaps=False)) == [(6, 6), (52, 2), (70, 4)]
    assert spans(plan_reads(parse_meter_map(eastron_like(max_gap=17), "t"))) == [(6, 6), (52, 22)]


def test_a_per_model_maximum_splits_requests():
    assert spans(plan_reads(parse_meter_map(eastron_like(max_gap=60, max_per_request=50), "t"))) == [(6, 48), (70, 4)]


def test_input_and_holding_registers_are_planned_apart():
    data = with_value("total_power_w", {"address": 7, "type": "int16", "unit": "W", "register_type": "holding"})
    requests = plan_reads(parse_meter_map(data, "t"))
    assert {(r.register_type, r.function_code) for r in requests} == {("input", 4), ("holding", 3)}


def test_the_naive_plan_is_one_request_per_value():
    meter_map = parse_meter_map(eastron_like(max_gap=60), "t")
    assert len(plan_one_per_value(meter_map)) == len(meter_map.values) == 6


@st.composite
def random_maps(draw):
    quantities = draw(st.lists(st.sampled_from([q for q in QUANTITIES if not q.startswith("current_a")]), unique=True, max_size=9))
    values = {}
    for quantity in ["current_a.l1", "current_a.l2", "current_a.l3", *quantities]:
        values[quantity] = {
            "address": draw(st.integers(0, 3000)),
            "type": draw(st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "int64", "float64"])),
            "unit": {"current_a": "A", "voltage_v": "V", "power_w": "W", "total_power_w": "W", "frequency_hz": "Hz"}.get(
                quantity.split(".")[0], "Wh"
            ),
            "register_type": draw(st.sampled_from(["input", "holding"])),
        }
    return parse_meter_map(
        base_map(values=values, max_gap_registers=draw(st.integers(0, 125)), max_registers_per_request=draw(st.integers(4, 125))),
        "random.json",
    )


@settings(max_examples=200, deadline=None)
@given(random_maps(), st.booleans())
def test_every_plan_covers_every_value_within_the_request_limit(meter_map, allow_gaps):
    requests = plan_reads(meter_map, allow_gaps=allow_gaps)
    assert all(1 <= request.count <= meter_map.max_registers_per_request <= MAX_REGISTERS_PER_REQUEST for request in requests)
    for value in meter_map.values:
        assert any(
            request.register_type == value.register_type
            and request.address <= value.address
            and value.address + value.count <= request.address + request.count
            for request in requests
        ), value
    spans_of = {(v.register_type, v.address, v.count) for v in meter_map.values}
    values_overlap = any(
        a != b and a[0] == b[0] and a[1] < b[1] + b[2] and b[1] < a[1] + a[2] for a in spans_of for b in spans_of
    )
    for first in requests:  # no register is read twice (unless the map's values overlap)
        if values_overlap:
            break
        for second in requests:
            if first is not second and first.register_type == second.register_type:
                assert set(first.addresses()).isdisjoint(second.addresses())
    if not allow_gaps:  # every register read belongs to some value
        covered = {(v.register_type, v.address + i) for v in meter_map.values for i in range(v.count)}
        assert all((r.register_type, a) in covered for r in requests for a in r.addresses())
    assert len(requests) <= len(plan_one_per_value(meter_map))


# --- decode --------------------------------------------------------------------------------


def test_float32_high_word_first():
    meter_map = parse_meter_map(base_map(), "t")
    image = zeros(meter_map)
    image.update(words_at(6, pack_words(10.5, "float32", "big")))
    assert pack_words(10.5, "float32", "big") == [0x4128, 0x0000]
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.current_a.l1 == 10.5 and reading.current_a.l2 == 0.0
    assert reading.measured_at == AT


def test_int32_low_word_first_with_a_fixed_scale_like_the_em24():
    data = base_map(word_order="little", values={f"current_a.l{n}": {"address": 2 * n, "type": "int32", "unit": "A", "scale": 0.001} for n in (1, 2, 3)})
    meter_map = parse_meter_map(data, "t")
    image = zeros(meter_map)
    image.update(words_at(2, [10500, 0]))  # 10.5 A: low word first
    image.update(words_at(4, [0x5C70, 0x0001]))  # 0x15C70 = 89200 -> 89.2 A
    image.update(words_at(6, [0xFFFF - 999, 0xFFFF]))  # -1000 -> -1.0 A
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.current_a.as_tuple() == (10.5, 89.2, -1.0)


def test_units_are_converted_to_watts_and_watt_hours():
    data = base_map(
        values={
            **base_map()["values"],
            "total_power_w": {"address": 20, "type": "float32", "unit": "kW"},
            "import_energy_wh": {"address": 22, "type": "uint64", "unit": "kWh", "scale": 0.01},
            "export_energy_wh": {"address": 26, "type": "int64", "unit": "Wh"},
            "frequency_hz": {"address": 30, "type": "uint16", "unit": "Hz", "scale": 0.01},
        }
    )
    meter_map = parse_meter_map(data, "t")
    image = zeros(meter_map)
    image.update(words_at(20, pack_words(3.5, "float32", "big")))
    image.update(words_at(22, pack_words(1234567, "uint64", "big")))
    image.update(words_at(26, pack_words(98765, "int64", "big")))
    image.update(words_at(30, [4998]))
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.total_power_w == 3500.0
    assert reading.import_energy_wh == 12_345_670.0
    assert reading.export_energy_wh == 98765.0
    assert reading.frequency_hz == 49.98


def sunspec_like() -> dict:
    return base_map(
        register_type="holding",
        not_available="sunspec",
        max_gap_registers=10,
        scale_factors={"A_SF": {"address": 6}, "Hz_SF": {"address": 17}},
        values={
            **{f"current_a.l{n}": {"address": 2 + n, "type": "int16", "unit": "A", "scale_factor": "A_SF"} for n in (1, 2, 3)},
            "frequency_hz": {"address": 16, "type": "int16", "unit": "Hz", "scale_factor": "Hz_SF"},
        },
    )


def test_sunspec_scale_factors_and_not_implemented_markers():
    meter_map = parse_meter_map(sunspec_like(), "t")
    image = {("holding", address): 0 for address in range(3, 18)}
    image.update(words_at(3, [1050, 0x8000, pack_words(-25, "int16", "big")[0]], "holding"))
    image.update(words_at(6, pack_words(-2, "sunssf", "big"), "holding"))
    image.update(words_at(16, [0x8000, 0x8000], "holding"))  # value and its scale factor not implemented
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.current_a.l1 == 10.5 and reading.current_a.l2 is None and reading.current_a.l3 == -0.25
    assert reading.frequency_hz is None
    assert set(reading.missing) == {"current_a.l2", "frequency_hz"}


def test_abb_all_ones_means_not_available():
    data = base_map(not_available="abb", values={f"current_a.l{n}": {"address": 2 * n, "type": "uint32", "unit": "A", "scale": 0.01} for n in (1, 2, 3)})
    meter_map = parse_meter_map(data, "t")
    image = zeros(meter_map)
    image.update(words_at(4, [0xFFFF, 0xFFFF]))
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.current_a.l2 is None and reading.missing == ("current_a.l2",)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e30, -5000.0])
def test_nan_infinity_and_implausible_values_are_dropped(bad):
    meter_map = parse_meter_map(with_value("voltage_v.l1", {"address": 0, "type": "float32", "unit": "V"}), "t")
    image = zeros(meter_map)
    image.update(words_at(0, pack_words(bad, "float32", "big")))
    reading = decode(meter_map, image, measured_at=AT)
    assert reading.voltage_v.l1 is None and reading.missing == ("voltage_v.l1",)


def test_a_register_that_was_not_read_is_a_decode_error():
    meter_map = parse_meter_map(base_map(), "t")
    with pytest.raises(DecodeError, match="input register 6 was not read"):
        decode(meter_map, {}, measured_at=AT)


def test_a_short_answer_is_a_decode_error():
    with pytest.raises(DecodeError, match="input registers 0-9: expected 10 registers, got 9"):
        registers_from_responses([ReadRequest("input", 0, 10)], [[0] * 9])


def test_a_single_phase_reading_totals_its_one_phase():
    data = base_map(phases=1, values={"current_a.l1": {"address": 0, "type": "int16", "unit": "A"}, "power_w.l1": {"address": 1, "type": "int16", "unit": "W"}})
    meter_map = parse_meter_map(data, "t")
    reading = decode(meter_map, words_at(0, [12, 2760]), measured_at=AT)
    assert reading.phases == 1 and reading.total_power_w == 2760.0 and reading.has_phase_currents


# --- encode and the word-level round trip --------------------------------------------------


@given(st.sampled_from(sorted(DATA_TYPES)), st.sampled_from(["big", "little"]), st.data())
def test_pack_and_unpack_are_inverse(data_type, word_order, data):
    count, fmt = DATA_TYPES[data_type]
    if fmt in "fd":
        value = data.draw(st.floats(allow_nan=False, width=32 if fmt == "f" else 64))
    else:
        bits = 16 * count
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if fmt.islower() else (0, 2**bits - 1)
        value = data.draw(st.integers(low, high))
    words = pack_words(value, data_type, word_order)
    assert len(words) == count and all(0 <= word <= 0xFFFF for word in words)
    assert unpack_words(words, data_type, word_order) == value
    if count > 1:
        assert pack_words(value, data_type, "little") == list(reversed(pack_words(value, data_type, "big")))


def test_unpack_refuses_the_wrong_number_of_words():
    with pytest.raises(DecodeError):
        unpack_words([1], "float32", "big")
    with pytest.raises(DecodeError):
        unpack_words([70000], "uint16", "big")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 6000).map(lambda centiamps: centiamps / 100), min_size=3, max_size=3),
    st.sampled_from(["int32", "uint32", "float32", "int16"]),
    st.sampled_from(["big", "little"]),
)
def test_encode_then_decode_gives_the_values_back(currents, data_type, word_order):
    scale = 1 if data_type == "float32" else 0.01
    data = base_map(word_order=word_order, values={f"current_a.l{n}": {"address": 2 * n, "type": data_type, "unit": "A", **({"scale": scale} if scale != 1 else {})} for n in (1, 2, 3)})
    meter_map = parse_meter_map(data, "t")
    values = {f"current_a.l{n}": current for n, current in zip((1, 2, 3), currents)}
    reading = decode(meter_map, {**zeros(meter_map), **encode(meter_map, values)}, measured_at=AT)
    for n, current in zip((1, 2, 3), currents):
        assert getattr(reading.current_a, f"l{n}") == pytest.approx(current, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-30000, 30000).map(lambda centiamps: centiamps / 100), min_size=3, max_size=3))
def test_sunspec_encode_picks_a_scale_factor_that_fits(currents):
    meter_map = parse_meter_map(sunspec_like(), "t")
    values = {f"current_a.l{n}": current for n, current in zip((1, 2, 3), currents)} | {"frequency_hz": 50.0}
    image = {("holding", address): 0 for address in range(3, 18)} | encode(meter_map, values)
    reading = decode(meter_map, image, measured_at=AT)
    for n, current in zip((1, 2, 3), currents):
        # The exponent is the finest that fits every value of the group; at worst 0.1 A.
        assert getattr(reading.current_a, f"l{n}") == pytest.approx(current, abs=0.051)


def test_encode_marks_missing_values_as_not_available():
    meter_map = parse_meter_map(sunspec_like(), "t")
    image = encode(meter_map, {"current_a.l1": 1.0, "current_a.l2": 2.0, "current_a.l3": None, "frequency_hz": 50.0})
    assert image[("holding", 5)] == 0x8000
    with pytest.raises(ValueError, match="does not fit uint16"):
        encode(parse_meter_map(base_map(values={f"current_a.l{n}": {"address": n, "type": "uint16", "unit": "A"} for n in (1, 2, 3)}), "t"), {"current_a.l1": -1.0})


# --- SunSpec -------------------------------------------------------------------------------


def test_sunspec_discovery_helpers():
    layout = sunspec_layout([(1, 66), (203, 105)])
    assert is_sunspec_marker(layout[:2]) and not is_sunspec_marker([0, 0])
    assert sunspec_model_header(layout[2:4]) == (1, 66)
    assert sunspec_model_header(layout[70:72]) == (203, 105)
    assert layout[-2:] == [0xFFFF, 0]
    with pytest.raises(DecodeError):
        sunspec_model_header([1])


def test_a_sunspec_map_is_made_absolute_for_the_model_found():
    data = copy.deepcopy(sunspec_like())
    data["sunspec"] = {"models": [201, 203]}
    meter_map = parse_meter_map(data, "t")
    single = meter_map.at_sunspec_model(201, 40070)
    assert single.phases == 1 and single.quantities() == ("current_a.l1", "frequency_hz")
    assert [value.address for value in single.values] == [40073, 40086]
    wye = meter_map.at_sunspec_model(203, 40070)
    assert wye.phases == 3 and not wye.is_sunspec
    with pytest.raises(MeterMapError, match="SunSpec model 204 is not one of"):
        meter_map.at_sunspec_model(204, 40070)


# --- purity --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["meters/registers.py", "meters/readings.py", "meters/charts.py"])
def test_the_core_modules_are_pure(module):
    allowed_local = {"meters.readings", "meters.registers", "linkray_site.electrical"}
    tree = ast.parse((ROOT / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or name in allowed_local or top == "__future__", f"{module} imports {name}"
            assert top not in {"socket", "asyncio", "time", "os", "pathlib"}, f"{module} imports {name}"


def test_struct_is_the_only_codec():  # the decode does not depend on pymodbus's helpers
    assert struct.pack(">f", 10.5) == b"\x41\x28\x00\x00"
