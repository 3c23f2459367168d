"""Reads of balancing data for the control loop, pages and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from balancing.allocation import SiteLimits, allocate
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from gateway.models import Charger
from meters import selectors as meter_selectors


def active_setpoint(now: datetime) -> Setpoint | None:
    setpoint = Setpoint.objects.order_by("-set_at").first()
    return setpoint if setpoint is not None and setpoint.active(now) else None


def site_limits(site: SiteSettings, setpoint: Setpoint | None) -> SiteLimits:
    return SiteLimits(
        grid_limit_a=site.grid_limit_a or 0.0,
        margin_a=site.margin_a,
        grid_limit_kw=site.grid_limit_kw,
        setpoint_a=setpoint.max_import_a if setpoint else None,
        setpoint_kw=setpoint.max_import_kw if setpoint else None,
        failsafe_current_a=site.failsafe_current_a,
        nominal_voltage_v=site.nominal_voltage_v,
    )


def meter_health(now: datetime) -> str:
    """"ok", "retrying" (fresh, last poll failed), "stale", "no reading" or "no grid meter"."""
    status = meter_selectors.grid_status()
    if status is None:
        return "no grid meter"
    if status.reading is None:
        return "no reading"
    if status.is_stale(now):
        return "stale"
    return "retrying" if status.error else "ok"


def site_status(now: datetime) -> dict[str, Any]:
    """The site's settings with live values: what `GET /api/site` returns and the dashboard shows."""
    from balancing.control import last_site_status

    site = SiteSettings.load()
    setpoint = active_setpoint(now)
    reading = meter_selectors.grid_reading(now)
    grid_current_a = list(reading.current_a.as_tuple()) if reading is not None else None
    limit_in_force_a = limit_reason = capacity_left_a = None
    if site.grid_limit_a is not None:
        # The limit in force and headroom against the whole reading (chargers included).
        summary = allocate(site_limits(site, setpoint), reading.current_a.as_tuple() if reading else None, [], now_s=now.timestamp())
        limit_in_force_a, limit_reason = summary.limit_in_force_a, summary.limit_reason
        capacity_left_a = summary.capacity_left_a
    last = last_site_status() or {}
    return {
        "grid_limit_a": site.grid_limit_a,
        "grid_limit_kw": site.grid_limit_kw,
        "margin_a": site.margin_a,
        "failsafe_current_a": site.failsafe_current_a,
        "nominal_voltage_v": site.nominal_voltage_v,
        "control_period_s": site.control_period_s,
        "grid_current_a": grid_current_a,
        "limit_in_force_a": limit_in_force_a,
        "limit_reason": limit_reason if site.grid_limit_a is not None else "site limit not set",
        "setpoint": setpoint_view(setpoint),
        "capacity_left_a": capacity_left_a,
        "failsafe": site.grid_limit_a is not None and reading is None,
        "meter_health": meter_health(now),
        "charging_power_w": last.get("charging_power_w"),
        "controlled_chargers": last.get("controlled_chargers"),
        "last_cycle_at": last.get("decided_at"),
    }


def setpoint_view(setpoint: Setpoint | None) -> dict[str, Any] | None:
    if setpoint is None:
        return None
    return {
        "max_import_a": setpoint.max_import_a,
        "max_import_kw": setpoint.max_import_kw,
        "valid_until": setpoint.valid_until,
        "set_by": setpoint.set_by,
        "set_at": setpoint.set_at,
    }


def charger_balancing_view(charger: Charger) -> dict[str, Any]:
    """A charger's balancing settings and the last decision (for GET /api/chargers/<id>, pages)."""
    balancing = ChargerBalancing.objects.filter(charger=charger).first()
    if balancing is None:
        balancing = ChargerBalancing(charger=charger)
    return {
        "enabled": charger.balancing_enabled,
        "kind": balancing.kind,
        "phases": balancing.wiring_phases,
        "min_current_a": balancing.min_current_a,
        "max_current_a": balancing.max_current_a,
        "max_power_w": balancing.max_power_w,
        "priority": balancing.priority,
        "rate_unit": balancing.rate_unit or None,
        "allocation": {
            "limit_a": balancing.limit_a,
            "limit_w": balancing.limit_w,
            "reason": balancing.reason or None,
            "decided_at": balancing.decided_at,
            "controllable": balancing.controllable,
            "not_controllable_reason": balancing.not_controllable_reason or None,
            "sent_limit_a": balancing.sent_limit,
            "sent_unit": balancing.sent_unit or None,
            "sent_at": balancing.sent_at,
        },
    }


def charger_balancing_by_id(charge_box_id: str) -> dict[str, Any] | None:
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    return charger_balancing_view(charger) if charger is not None else None


def balanced_chargers() -> list[dict[str, Any]]:
    """Every charger with balancing on, with its last decision (dashboard's site panel)."""
    rows = []
    for charger in Charger.objects.filter(balancing_enabled=True).select_related("balancing").order_by("charge_box_id"):
        balancing = getattr(charger, "balancing", None)
        rows.append(
            {
                "charge_box_id": charger.charge_box_id,
                "connected": charger.charger_connected,
                "kind": balancing.kind if balancing else "",
                "limit_a": balancing.limit_a if balancing else None,
                "reason": (balancing.reason if balancing else "") or "no decision yet",
                "controllable": balancing.controllable if balancing else True,
                "not_controllable_reason": balancing.not_controllable_reason if balancing else "",
            }
        )
    return rows
