"""The meter maps LinkRay knows: the shipped files in meters/maps/ and the installer's own in
LINKRAY_METER_MAPS_DIR (default <data dir>/meter_maps/).

Loaded and validated once at start (MetersConfig.ready). A broken shipped map is a bug and
stops startup; a broken custom map is logged, listed on the meters page and skipped, so one
typo in a file cannot take the controller down.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from meters.registers import MeterMap, MeterMapError, parse_meter_map

logger = logging.getLogger(__name__)

SHIPPED_MAPS_DIR = Path(__file__).resolve().parent / "maps"
_MAX_MAP_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Catalog:
    maps: dict[str, MeterMap] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # one line per custom map file that could not be used

    def get(self, key: str) -> MeterMap | None:
        return self.maps.get(key)

    def choices(self) -> list[tuple[str, str]]:
        return sorted(((key, meter_map.name) for key, meter_map in self.maps.items()), key=lambda choice: choice[1].lower())


def read_map_file(path: Path) -> MeterMap:
    """One map file -> MeterMap, or MeterMapError naming the file."""
    try:
        if path.stat().st_size > _MAX_MAP_BYTES:
            raise MeterMapError(f"{path}: larger than {_MAX_MAP_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MeterMapError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise MeterMapError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise MeterMapError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    return parse_meter_map(data, source=str(path))


def load_catalog(shipped_dir: Path, custom_dir: Path | None) -> Catalog:
    maps: dict[str, MeterMap] = {}
    for path in sorted(shipped_dir.glob("*.json")):
        meter_map = read_map_file(path)  # raises: a shipped map must be valid
        if meter_map.key in maps:
            raise MeterMapError(f"{path}: key {meter_map.key!r} is already used by {maps[meter_map.key].source}")
        maps[meter_map.key] = meter_map
    errors: list[str] = []
    if custom_dir is not None and custom_dir.is_dir():
        custom_keys: dict[str, str] = {}
        for path in sorted(custom_dir.glob("*.json")):
            try:
                meter_map = read_map_file(path)
                if meter_map.key in custom_keys:
                    raise MeterMapError(f"{path}: key {meter_map.key!r} is already used by {custom_keys[meter_map.key]}")
            except MeterMapError as error:
                logger.error("meter_map_rejected path=%s reason=%s", path, error)
                errors.append(str(error))
                continue
            if meter_map.key in maps:
                logger.warning("meter_map_overrides_shipped key=%s path=%s", meter_map.key, path)
            custom_keys[meter_map.key] = str(path)
            maps[meter_map.key] = meter_map
    return Catalog(maps, tuple(errors))


_catalog: Catalog | None = None


def catalog() -> Catalog:
    """The process's catalog, loaded on first use (MetersConfig.ready loads it at start)."""
    global _catalog
    if _catalog is None:
        _catalog = reload_catalog()
    return _catalog


def reload_catalog() -> Catalog:
    global _catalog
    from django.conf import settings

    _catalog = load_catalog(SHIPPED_MAPS_DIR, Path(settings.LINKRAY_METER_MAPS_DIR))
    return _catalog
