"""Meter register maps as data: schema, validation, read plan, decode and encode.

Pure: stdlib only (plus meters.readings); no Django, pymodbus, sockets, files or clock. A map
is a JSON-like dict (one file per model in meters/maps/, custom ones in the data directory);
`parse_meter_map` turns it into a `MeterMap` or raises `MeterMapError` naming the file and the
field. All addresses are 0-based protocol addresses (what goes on the wire).

    meter_map = parse_meter_map(json.loads(text), source="sdm630.json")
    for request in plan_reads(meter_map):        # few, contiguous requests
        words.update(zip(request.addresses(), registers_from_the_meter))
    reading = decode(meter_map, words, measured_at=now)
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from meters.readings import PHASE_NAMES, QUANTITIES, MeterReading, plausible, quantity_family

MAX_REGISTERS_PER_REQUEST = 125  # Modbus PDU limit for FC03/FC04
REGISTER_TYPES = ("input", "holding")
WORD_ORDERS = ("big", "little")
FUNCTION_CODES = {"holding": 3, "input": 4}

# name -> (registers, struct format, signed)
DATA_TYPES: dict[str, tuple[int, str]] = {
    "int16": (1, "h"),
    "uint16": (1, "H"),
    "int32": (2, "i"),
    "uint32": (2, "I"),
    "int64": (4, "q"),
    "uint64": (4, "Q"),
    "float32": (2, "f"),
    "float64": (4, "d"),
    "acc32": (2, "I"),  # SunSpec accumulator: uint32, 0 = not accumulated
    "sunssf": (1, "h"),  # SunSpec scale factor: int16 power-of-ten exponent
}
VALUE_TYPES = tuple(name for name in DATA_TYPES if name != "sunssf")

# Source unit -> factor to the canonical unit of each family.
UNITS: dict[str, dict[str, float]] = {
    "voltage_v": {"V": 1.0, "kV": 1000.0},
    "current_a": {"A": 1.0, "mA": 0.001},
    "power_w": {"W": 1.0, "kW": 1000.0},
    "total_power_w": {"W": 1.0, "kW": 1000.0},
    "import_energy_wh": {"Wh": 1.0, "kWh": 1000.0, "MWh": 1_000_000.0},
    "export_energy_wh": {"Wh": 1.0, "kWh": 1000.0, "MWh": 1_000_000.0},
    "frequency_hz": {"Hz": 1.0},
}

# Raw values a meter sends for "I cannot measure this", per convention. Floats: NaN/inf always.
NOT_AVAILABLE: dict[str, dict[str, frozenset[int]]] = {
    "none": {},
    "sunspec": {
        "int16": frozenset({-0x8000}),
        "uint16": frozenset({0xFFFF}),
        "int32": frozenset({-0x80000000}),
        "uint32": frozenset({0xFFFFFFFF}),
        "acc32": frozenset({0}),
        "sunssf": frozenset({-0x8000}),
    },
    # ABB A/B series (mbmd): unsigned all-ones, signed maximum.
    "abb": {
        "uint16": frozenset({0xFFFF}),
        "uint32": frozenset({0xFFFFFFFF}),
        "uint64": frozenset({0xFFFFFFFFFFFFFFFF}),
        "int16": frozenset({0x7FFF}),
        "int32": frozenset({0x7FFFFFFF}),
        "int64": frozenset({0x7FFFFFFFFFFFFFFF}),
    },
}

SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES = ("N", "E", "O")
SUNSPEC_BASE_ADDRESSES = (40000, 0, 50000)
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_END = 0xFFFF
SUNSPEC_METER_PHASES = {201: 1, 202: 2, 203: 3, 204: 3}
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class MeterMapError(ValueError):
    """A map file that cannot be used; the message names the file and the field."""


class DecodeError(ValueError):
    """Registers that do not fit the map (a read came back short)."""


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """Where and how one quantity sits in the meter's registers."""

    quantity: str
    register_type: str
    address: int
    data_type: str
    word_order: str = "big"
    unit: str = ""
    scale: float = 1.0
    scale_factor: str = ""  # name of a sunssf register (SunSpec), "" for none

    @property
    def count(self) -> int:
        return DATA_TYPES[self.data_type][0]


@dataclass(frozen=True, slots=True)
class ScaleFactor:
    """A SunSpec scale factor register: value = raw * 10 ** sf."""

    name: str
    register_type: str
    address: int

    @property
    def count(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class SerialDefaults:
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    unit_id: int = 1
    verified: bool = False


@dataclass(frozen=True, slots=True)
class ReadRequest:
    register_type: str
    address: int
    count: int

    @property
    def function_code(self) -> int:
        return FUNCTION_CODES[self.register_type]

    def addresses(self) -> range:
        return range(self.address, self.address + self.count)

    def describe(self) -> str:
        return f"{self.register_type} registers {self.address}-{self.address + self.count - 1}"


@dataclass(frozen=True, slots=True)
class MeterMap:
    key: str
    name: str
    manufacturer: str
    phases: int
    values: tuple[RegisterValue, ...]
    scale_factors: tuple[ScaleFactor, ...] = ()
    max_registers_per_request: int = MAX_REGISTERS_PER_REQUEST
    max_gap_registers: int = 0
    not_available: str = "none"
    sunspec_models: tuple[int, ...] = ()
    serial_defaults: SerialDefaults = SerialDefaults()
    tcp_port: int = 502
    notes: str = ""
    sources: tuple[str, ...] = ()
    source: str = ""  # where the map came from (file path), for messages

    @property
    def is_sunspec(self) -> bool:
        return bool(self.sunspec_models)

    def quantities(self) -> tuple[str, ...]:
        return tuple(value.quantity for value in self.values)

    def at_sunspec_model(self, model_id: int, model_address: int) -> MeterMap:
        """The map with offsets made absolute for a SunSpec model found at `model_address`."""
        if model_id not in self.sunspec_models:
            raise MeterMapError(f"{self.source}: SunSpec model {model_id} is not one of {list(self.sunspec_models)}")
        phases = SUNSPEC_METER_PHASES.get(model_id, self.phases)
        return replace(
            self,
            phases=phases,
            values=tuple(
                replace(value, address=value.address + model_address)
                for value in self.values
                if _phase_index(value.quantity) < phases
            ),
            scale_factors=tuple(replace(sf, address=sf.address + model_address) for sf in self.scale_factors),
            sunspec_models=(),
        )


# --- parsing and validation ----------------------------------------------------------------

_TOP_KEYS = {
    "key",
    "name",
    "manufacturer",
    "phases",
    "register_type",
    "word_order",
    "max_registers_per_request",
    "max_gap_registers",
    "not_available",
    "sunspec",
    "serial_defaults",
    "tcp_port",
    "notes",
    "sources",
    "values",
    "scale_factors",
}
_VALUE_KEYS = {"address", "type", "unit", "scale", "scale_factor", "register_type", "word_order"}
_SCALE_FACTOR_KEYS = {"address", "register_type"}
_SERIAL_KEYS = {"baudrate", "parity", "stopbits", "unit_id", "verified"}


def parse_meter_map(data: Any, source: str) -> MeterMap:
    """Validate a map (decoded JSON) and build a MeterMap; MeterMapError on any defect."""
    where = _Where(source)
    if not isinstance(data, dict):
        raise where.error("", "expected a JSON object at the top level")
    where.unknown_keys(data, _TOP_KEYS, "")
    key = where.string(data, "key", required=True)
    if not _KEY.match(key):
        raise where.error("key", f"{key!r}: use 1-40 lower-case letters, digits, '_' or '-'")
    name = where.string(data, "name", required=True)
    manufacturer = where.string(data, "manufacturer", required=True)
    phases = where.integer(data, "phases", 1, 3, default=3)
    register_type = where.choice(data, "register_type", REGISTER_TYPES, default="input")
    word_order = where.choice(data, "word_order", WORD_ORDERS, default="big")
    not_available = where.choice(data, "not_available", tuple(NOT_AVAILABLE), default="none")
    max_per_request = where.integer(data, "max_registers_per_request", 4, MAX_REGISTERS_PER_REQUEST, default=MAX_REGISTERS_PER_REQUEST)
    max_gap = where.integer(data, "max_gap_registers", 0, MAX_REGISTERS_PER_REQUEST, default=0)

    sunspec_models: tuple[int, ...] = ()
    if "sunspec" in data:
        sunspec = data["sunspec"]
        if not isinstance(sunspec, dict) or set(sunspec) != {"models"}:
            raise where.error("sunspec", 'expected {"models": [201, 202, 203, 204]}')
        models = sunspec["models"]
        if not isinstance(models, list) or not models or not all(_is_int(m) and 1 <= m < 0xFFFF for m in models):
            raise where.error("sunspec.models", "expected a non-empty list of SunSpec model ids")
        sunspec_models = tuple(models)

    scale_factors = _parse_scale_factors(data.get("scale_factors", {}), where, register_type)
    known_scale_factors = {sf.name for sf in scale_factors}
    values = _parse_values(data.get("values"), where, phases, register_type, word_order, known_scale_factors)

    meter_map = MeterMap(
        key=key,
        name=name,
        manufacturer=manufacturer,
        phases=phases,
        values=values,
        scale_factors=scale_factors,
        max_registers_per_request=max_per_request,
        max_gap_registers=max_gap,
        not_available=not_available,
        sunspec_models=sunspec_models,
        serial_defaults=_parse_serial_defaults(data.get("serial_defaults", {}), where),
        tcp_port=where.integer(data, "tcp_port", 1, 65535, default=502),
        notes=where.string(data, "notes"),
        sources=tuple(where.string_list(data, "sources")),
        source=source,
    )
    _check_plan(meter_map, where)
    return meter_map


def _parse_scale_factors(raw: Any, where: _Where, register_type: str) -> tuple[ScaleFactor, ...]:
    if not isinstance(raw, dict):
        raise where.error("scale_factors", 'expected an object {"A_SF": {"address": 6}, ...}')
    scale_factors = []
    for name, spec in raw.items():
        path = f"scale_factors.{name}"
        if not isinstance(spec, dict):
            raise where.error(path, "expected an object with an address")
        where.unknown_keys(spec, _SCALE_FACTOR_KEYS, path)
        scale_factors.append(
            ScaleFactor(
                name=name,
                register_type=where.choice(spec, "register_type", REGISTER_TYPES, default=register_type, path=path),
                address=where.address(spec, path),
            )
        )
    return tuple(scale_factors)


def _parse_values(
    raw: Any, where: _Where, phases: int, register_type: str, word_order: str, scale_factors: set[str]
) -> tuple[RegisterValue, ...]:
    if not isinstance(raw, dict) or not raw:
        raise where.error("values", 'expected an object {"current_a.l1": {"address": 6, "type": "float32", "unit": "A"}, ...}')
    values = []
    for quantity, spec in raw.items():
        path = f"values.{quantity}"
        if quantity not in QUANTITIES:
            raise where.error(path, f"unknown quantity; expected one of {', '.join(QUANTITIES)}")
        if _phase_index(quantity) >= phases:
            raise where.error(path, f"the map declares {phases} phase(s)")
        if not isinstance(spec, dict):
            raise where.error(path, "expected an object with address, type and unit")
        where.unknown_keys(spec, _VALUE_KEYS, path)
        data_type = where.choice(spec, "type", VALUE_TYPES, path=path, required=True)
        family = quantity_family(quantity)
        unit = where.choice(spec, "unit", tuple(UNITS[family]), path=path, required=True)
        scale = spec.get("scale", 1)
        if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
            raise where.error(f"{path}.scale", f"{scale!r}: expected a positive number (raw x scale = value)")
        scale_factor = where.string(spec, "scale_factor", path=path)
        if scale_factor and scale_factor not in scale_factors:
            raise where.error(f"{path}.scale_factor", f"{scale_factor!r} is not declared in scale_factors")
        if scale_factor and data_type in ("float32", "float64"):
            raise where.error(f"{path}.scale_factor", "floats take no scale factor")
        address = where.address(spec, path)
        if address + DATA_TYPES[data_type][0] > 0x10000:
            raise where.error(f"{path}.address", "the value runs past register 65535")
        values.append(
            RegisterValue(
                quantity=quantity,
                register_type=where.choice(spec, "register_type", REGISTER_TYPES, default=register_type, path=path),
                address=address,
                data_type=data_type,
                word_order=where.choice(spec, "word_order", WORD_ORDERS, default=word_order, path=path),
                unit=unit,
                scale=float(scale),
                scale_factor=scale_factor,
            )
        )
    for phase in PHASE_NAMES[:phases]:
        if f"current_a.{phase}" not in raw:
            raise where.error("values", f"current_a.{phase} is required: balancing needs each phase's current")
    return tuple(values)


def _parse_serial_defaults(raw: Any, where: _Where) -> SerialDefaults:
    path = "serial_defaults"
    if not isinstance(raw, dict):
        raise where.error(path, "expected an object")
    where.unknown_keys(raw, _SERIAL_KEYS, path)
    baudrate = raw.get("baudrate", 9600)
    if baudrate not in SERIAL_BAUDRATES or not _is_int(baudrate):
        raise where.error(f"{path}.baudrate", f"{baudrate!r}: expected one of {list(SERIAL_BAUDRATES)}")
    verified = raw.get("verified", False)
    if not isinstance(verified, bool):
        raise where.error(f"{path}.verified", "expected true or false")
    return SerialDefaults(
        baudrate=baudrate,
        parity=where.choice(raw, "parity", PARITIES, default="N", path=path),
        stopbits=where.integer(raw, "stopbits", 1, 2, default=1, path=path),
        unit_id=where.integer(raw, "unit_id", 1, 247, default=1, path=path),
        verified=verified,
    )


def _check_plan(meter_map: MeterMap, where: _Where) -> None:
    """Every scaled value must share a request with its scale factor (read as one pair)."""
    for sunspec_base in (0, 40000) if meter_map.is_sunspec else (None,):
        widest = max(meter_map.sunspec_models, key=lambda model: SUNSPEC_METER_PHASES.get(model, 0), default=0)
        concrete = meter_map if sunspec_base is None else meter_map.at_sunspec_model(widest, sunspec_base)
        requests = plan_reads(concrete)
        by_name = {sf.name: sf for sf in concrete.scale_factors}
        for value in concrete.values:
            if not value.scale_factor:
                continue
            sf = by_name[value.scale_factor]
            if _request_index(requests, value) != _request_index(requests, sf):
                raise where.error(
                    f"values.{value.quantity}.scale_factor",
                    "the value and its scale factor would be read in different requests; "
                    "raise max_gap_registers or max_registers_per_request",
                )


def _request_index(requests: tuple[ReadRequest, ...], item: RegisterValue | ScaleFactor) -> int:
    for index, request in enumerate(requests):
        if request.register_type == item.register_type and item.address in request.addresses():
            return index
    raise AssertionError("plan does not cover a map entry")  # plan_reads covers every entry


class _Where:
    """Builds error messages that name the file and the field."""

    def __init__(self, source: str):
        self.source = source

    def error(self, path: str, message: str) -> MeterMapError:
        return MeterMapError(f"{self.source}: {path + ': ' if path else ''}{message}")

    def unknown_keys(self, data: dict, allowed: set[str], path: str) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.error(path or "top level", f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}")

    def string(self, data: dict, name: str, *, required: bool = False, path: str = "") -> str:
        field = f"{path}.{name}" if path else name
        if name not in data:
            if required:
                raise self.error(field, "is required")
            return ""
        if not isinstance(data[name], str) or (required and not data[name].strip()):
            raise self.error(field, f"{data[name]!r}: expected a non-empty string")
        return data[name].strip()

    def string_list(self, data: dict, name: str) -> list[str]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(name, "expected a list of strings")
        return value

    def integer(self, data: dict, name: str, low: int, high: int, *, default: int, path: str = "") -> int:
        field = f"{path}.{name}" if path else name
        value = data.get(name, default)
        if not _is_int(value) or not low <= value <= high:
            raise self.error(field, f"{value!r}: expected a whole number {low}-{high}")
        return value

    def choice(self, data: dict, name: str, choices: tuple[str, ...], *, default: str = "", path: str = "", required: bool = False) -> str:
        field = f"{path}.{name}" if path else name
        if name not in data and required:
            raise self.error(field, f"is required; one of {', '.join(choices)}")
        value = data.get(name, default)
        if value not in choices:
            raise self.error(field, f"{value!r}: expected one of {', '.join(choices)}")
        return value

    def address(self, data: dict, path: str) -> int:
        """An address as a number (52) or a hex string ("0x0034"), 0-65535."""
        raw = data.get("address")
        value = raw
        if isinstance(raw, str) and re.fullmatch(r"0[xX][0-9a-fA-F]{1,4}", raw.strip()):
            value = int(raw.strip(), 16)
        if not _is_int(value) or not 0 <= value <= 0xFFFF:
            raise self.error(f"{path}.address", f"{raw!r}: expected a 0-based register address 0-65535 (number or \"0x...\")")
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _phase_index(quantity: str) -> int:
    _, _, phase = quantity.partition(".")
    return PHASE_NAMES.index(phase) if phase else -1


# --- read plan -----------------------------------------------------------------------------


def plan_reads(meter_map: MeterMap, *, allow_gaps: bool = True) -> tuple[ReadRequest, ...]:
    """The fewest requests that cover the map: contiguous ranges, merged across gaps of at
    most `max_gap_registers` (none when allow_gaps is False), each at most
    `max_registers_per_request` registers long."""
    max_gap = meter_map.max_gap_registers if allow_gaps else 0
    requests: list[ReadRequest] = []
    for register_type in REGISTER_TYPES:
        spans = sorted(
            (item.address, item.address + item.count)
            for item in (*meter_map.values, *meter_map.scale_factors)
            if item.register_type == register_type
        )
        start = end = None
        for span_start, span_end in spans:
            if start is not None and span_start - end <= max_gap and max(end, span_end) - start <= meter_map.max_registers_per_request:
                end = max(end, span_end)
                continue
            if start is not None:
                requests.append(ReadRequest(register_type, start, end - start))
            start, end = span_start, span_end
        if start is not None:
            requests.append(ReadRequest(register_type, start, end - start))
    return tuple(requests)


def plan_one_per_value(meter_map: MeterMap) -> tuple[ReadRequest, ...]:
    """One request per value and scale factor: the naive plan, for comparison."""
    return tuple(
        ReadRequest(item.register_type, item.address, item.count)
        for item in (*meter_map.values, *meter_map.scale_factors)
    )


def registers_from_responses(requests: Iterable[ReadRequest], responses: Iterable[list[int]]) -> dict[tuple[str, int], int]:
    """{(register_type, address): word} from each request and the words it returned."""
    words: dict[tuple[str, int], int] = {}
    for request, registers in zip(requests, responses, strict=True):
        if len(registers) != request.count:
            raise DecodeError(f"{request.describe()}: expected {request.count} registers, got {len(registers)}")
        for address, word in zip(request.addresses(), registers):
            words[(request.register_type, address)] = word
    return words


# --- decode and encode ---------------------------------------------------------------------


def unpack_words(words: list[int], data_type: str, word_order: str) -> int | float:
    count, fmt = DATA_TYPES[data_type]
    if len(words) != count or not all(0 <= word <= 0xFFFF for word in words):
        raise DecodeError(f"{data_type}: expected {count} 16-bit words, got {words!r}")
    ordered = words if word_order == "big" else list(reversed(words))
    return struct.unpack(f">{fmt}", b"".join(word.to_bytes(2, "big") for word in ordered))[0]


def pack_words(value: int | float, data_type: str, word_order: str) -> list[int]:
    count, fmt = DATA_TYPES[data_type]
    raw = struct.pack(f">{fmt}", value)
    words = [int.from_bytes(raw[index : index + 2], "big") for index in range(0, 2 * count, 2)]
    return words if word_order == "big" else list(reversed(words))


def _raw_value(item: RegisterValue | ScaleFactor, words: Mapping[tuple[str, int], int], not_available: str) -> float | None:
    data_type = item.data_type if isinstance(item, RegisterValue) else "sunssf"
    word_order = item.word_order if isinstance(item, RegisterValue) else "big"
    try:
        item_words = [words[(item.register_type, address)] for address in range(item.address, item.address + item.count)]
    except KeyError:
        raise DecodeError(f"{item.register_type} register {item.address} was not read") from None
    raw = unpack_words(item_words, data_type, word_order)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None
        # float32 carries about 7 significant digits: 230.1 arrives as 230.100006...
        return float(f"{raw:.7g}") if data_type == "float32" else raw
    if raw in NOT_AVAILABLE[not_available].get(data_type, ()):
        return None
    return raw


def decode(meter_map: MeterMap, words: Mapping[tuple[str, int], int], *, measured_at: datetime) -> MeterReading:
    """Turn the registers read per plan_reads into a MeterReading in canonical units.

    Not-available markers, NaN and implausible values become None and are listed in
    `missing`; DecodeError if a register the map needs was not read.
    """
    scale_factors = {sf.name: _raw_value(sf, words, meter_map.not_available) for sf in meter_map.scale_factors}
    values: dict[str, float | None] = {}
    missing: list[str] = []
    for item in meter_map.values:
        value = _raw_value(item, words, meter_map.not_available)
        if value is not None:
            value = value * item.scale * UNITS[quantity_family(item.quantity)][item.unit]
            if item.scale_factor:
                exponent = scale_factors[item.scale_factor]
                value = None if exponent is None or not -10 <= exponent <= 10 else value * 10.0**exponent
        if value is not None and not plausible(item.quantity, value):
            value = None
        if value is None:
            missing.append(item.quantity)
        else:
            value = _tidy(value)
        values[item.quantity] = value
    return MeterReading.from_values(measured_at, values, phases=meter_map.phases, missing=tuple(missing))


def _tidy(value: float) -> float:
    """Round away float noise from scaling (230.10000000000002 -> 230.1)."""
    return float(f"{value:.12g}")


def encode(meter_map: MeterMap, values: Mapping[str, float | None]) -> dict[tuple[str, int], int]:
    """The registers a meter with this map shows for `values` (canonical units): the reverse of
    decode, for the simulator. Missing values get the map's not-available marker (NaN for
    floats, 0 when the map has no marker). SunSpec scale factors are chosen per group so every
    value fits its integer type with the finest resolution."""
    words: dict[tuple[str, int], int] = {}
    exponents = _choose_exponents(meter_map, values)
    for sf in meter_map.scale_factors:
        exponent = exponents.get(sf.name, 0)
        words[(sf.register_type, sf.address)] = pack_words(exponent, "sunssf", "big")[0]
    for item in meter_map.values:
        raw = _to_raw(item, values.get(item.quantity), exponents.get(item.scale_factor, 0), meter_map.not_available)
        for offset, word in enumerate(pack_words(raw, item.data_type, item.word_order)):
            words[(item.register_type, item.address + offset)] = word
    return words


def _source_value(item: RegisterValue, value: float, exponent: int) -> float:
    return value / UNITS[quantity_family(item.quantity)][item.unit] / item.scale / 10.0**exponent


def _fits(raw: float, data_type: str) -> bool:
    count, fmt = DATA_TYPES[data_type]
    if fmt in "fd":
        return True
    bits = 16 * count
    if fmt.islower():
        return -(2 ** (bits - 1)) < round(raw) < 2 ** (bits - 1) - 1
    return 0 <= round(raw) < 2**bits - 1


def _choose_exponents(meter_map: MeterMap, values: Mapping[str, float | None]) -> dict[str, int]:
    exponents = {}
    for sf in meter_map.scale_factors:
        members = [item for item in meter_map.values if item.scale_factor == sf.name and values.get(item.quantity) is not None]
        for exponent in range(-3, 10):
            if all(_fits(_source_value(item, values[item.quantity], exponent), item.data_type) for item in members):
                exponents[sf.name] = exponent
                break
        else:
            raise ValueError(f"values for scale factor {sf.name} do not fit their registers")
    return exponents


def _to_raw(item: RegisterValue, value: float | None, exponent: int, not_available: str) -> int | float:
    is_float = DATA_TYPES[item.data_type][1] in "fd"
    if value is None:
        if is_float:
            return math.nan
        markers = sorted(NOT_AVAILABLE[not_available].get(item.data_type, {0}))
        return markers[0]
    raw = _source_value(item, value, exponent)
    if is_float:
        return raw
    if not _fits(raw, item.data_type):
        raise ValueError(f"{item.quantity}={value} does not fit {item.data_type} at scale {item.scale}")
    return round(raw)


# --- SunSpec discovery (the adapter reads, these judge) ------------------------------------


def is_sunspec_marker(words: list[int]) -> bool:
    return tuple(words[:2]) == SUNSPEC_MARKER


def sunspec_model_header(words: list[int]) -> tuple[int, int]:
    """(model id, length) from the two registers at the start of a SunSpec model."""
    if len(words) < 2:
        raise DecodeError("a SunSpec model header is 2 registers")
    return words[0], words[1]


def sunspec_layout(models: Iterable[tuple[int, int]]) -> list[int]:
    """The registers a SunSpec device shows from its base address: the marker, then each
    (model id, length) with zeros as its points, then the end model. For the simulator."""
    words = list(SUNSPEC_MARKER)
    for model_id, length in models:
        words += [model_id, length] + [0] * length
    return words + [SUNSPEC_END, 0]
