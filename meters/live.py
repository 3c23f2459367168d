"""The latest MeterStatus per meter, where balancing and pages read it without the database.

Embedded default: a dict in the server process (the poller, balancing and the pages all run
there). Scale-out: the Django cache (Redis), because the Celery worker that polls is not the
process that balances or serves pages. Keys carry no expiry: a status that stops being
refreshed ages into staleness by its reading's timestamp, which is what callers check.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

from meters.readings import MeterStatus

_STATUS_KEY = "meters:status:{meter_id}"
_GRID_KEY = "meters:grid_meter_id"
_memory: dict[str, object] = {}


def _shared() -> bool:
    return not settings.LINKRAY_EMBEDDED


def _get(key: str) -> object | None:
    return cache.get(key) if _shared() else _memory.get(key)


def _set(key: str, value: object) -> None:
    if _shared():
        cache.set(key, value, timeout=None)
    else:
        _memory[key] = value


def _delete(key: str) -> None:
    if _shared():
        cache.delete(key)
    else:
        _memory.pop(key, None)


def get_status(meter_id: int) -> MeterStatus | None:
    status = _get(_STATUS_KEY.format(meter_id=meter_id))
    return status if isinstance(status, MeterStatus) else None


def get_statuses(meter_ids: list[int]) -> dict[int, MeterStatus]:
    if _shared():
        found = cache.get_many([_STATUS_KEY.format(meter_id=meter_id) for meter_id in meter_ids])
        statuses = {int(key.rsplit(":", 1)[1]): value for key, value in found.items()}
    else:
        statuses = {meter_id: _memory.get(_STATUS_KEY.format(meter_id=meter_id)) for meter_id in meter_ids}
    return {meter_id: status for meter_id, status in statuses.items() if isinstance(status, MeterStatus)}


def put_status(status: MeterStatus) -> None:
    _set(_STATUS_KEY.format(meter_id=status.meter_id), status)


def forget_status(meter_id: int) -> None:
    _delete(_STATUS_KEY.format(meter_id=meter_id))


def get_grid_meter_id() -> int | None:
    value = _get(_GRID_KEY)
    return value if isinstance(value, int) else None


def put_grid_meter_id(meter_id: int | None) -> None:
    if meter_id is None:
        _delete(_GRID_KEY)
    else:
        _set(_GRID_KEY, meter_id)


def clear() -> None:
    """Forget everything (tests)."""
    _memory.clear()
