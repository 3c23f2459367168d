"""Writes of balancing's configuration. Every change is audited with before/after; the control
loop picks it up on its next cycle (no restart). Synchronous: async callers use
database_sync_to_async."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from accounts.roles import Principal
from audit.services import changed, record
from balancing.forms import CHARGER_FIELDS, SITE_FIELDS, ChargerBalancingForm, SiteSettingsForm
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from balancing.selectors import active_setpoint
from gateway.models import Charger

logger = logging.getLogger(__name__)


class InvalidSettings(Exception):
    """Input the rules refuse: {field: message}."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("invalid input")
        self.fields = fields


def _errors(form) -> dict[str, str]:
    fields = {}
    for name, messages in form.errors.items():
        fields[name if name != "__all__" else "body"] = "; ".join(str(message) for message in messages)
    return fields


def site_dict(settings: SiteSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in SITE_FIELDS}


def update_site(principal: Principal | None, changes: dict[str, Any]) -> SiteSettings:
    """Change the given fields of the site settings; the others keep their values."""
    with transaction.atomic():
        settings = SiteSettings.load()
        before = site_dict(settings)
        form = SiteSettingsForm({**before, **changes}, instance=settings)
        if not form.is_valid():
            raise InvalidSettings(_errors(form))
        form.save()
        old, new = changed(before, site_dict(settings))
        if new:
            record(principal, "site.update", "site", before=old, after=new)
    return settings


def setpoint_dict(setpoint: Setpoint | None) -> dict[str, Any] | None:
    if setpoint is None:
        return None
    return {
        "max_import_a": setpoint.max_import_a,
        "max_import_kw": setpoint.max_import_kw,
        "valid_until": setpoint.valid_until.isoformat() if setpoint.valid_until else None,
        "set_by": setpoint.set_by,
        "set_at": setpoint.set_at.isoformat(),
    }


def set_setpoint(
    principal: Principal | None, now: datetime, *, max_import_a: float | None, max_import_kw: float | None, valid_for_s: float
) -> Setpoint:
    if (max_import_a is None) == (max_import_kw is None):
        raise InvalidSettings({"body": "give exactly one of max_import_a and max_import_kw"})
    with transaction.atomic():
        before = setpoint_dict(active_setpoint(now))
        Setpoint.objects.all().delete()
        setpoint = Setpoint.objects.create(
            max_import_a=max_import_a,
            max_import_kw=max_import_kw,
            valid_until=now + timedelta(seconds=valid_for_s),
            set_by=principal.label if principal else "",
            set_at=now,
        )
        record(principal, "site.setpoint.set", "site", before=before, after=setpoint_dict(setpoint))
    return setpoint


def clear_setpoint(principal: Principal | None, now: datetime) -> bool:
    with transaction.atomic():
        before = setpoint_dict(active_setpoint(now))
        deleted, _ = Setpoint.objects.all().delete()
        record(principal, "site.setpoint.clear", "site", before=before, after=None, outcome="cleared" if before else "none active")
    return before is not None


def charger_balancing_dict(balancing: ChargerBalancing) -> dict[str, Any]:
    return {
        "enabled": balancing.charger.balancing_enabled,
        **{name: getattr(balancing, name) for name in CHARGER_FIELDS},
        "rate_unit": balancing.rate_unit or None,
    }


def balancing_for(charger: Charger) -> ChargerBalancing:
    balancing, _ = ChargerBalancing.objects.get_or_create(charger=charger)
    balancing.charger = charger  # one instance: `enabled` is read from it
    return balancing


def update_charger_balancing(principal: Principal | None, charge_box_id: str, changes: dict[str, Any]) -> ChargerBalancing:
    """Change a charger's balancing settings; a charger LinkRay has not seen yet is registered
    (installers configure before the chargers arrive)."""
    with transaction.atomic():
        charger, created = Charger.objects.get_or_create(charge_box_id=charge_box_id)
        if created and "enabled" not in changes:
            changes = {**changes, "enabled": True}  # configured for balancing before it arrives: balanced
        balancing = balancing_for(charger)
        before = charger_balancing_dict(balancing)
        data = {**before, **changes}
        data["rate_unit"] = data.get("rate_unit") or ""
        form = ChargerBalancingForm(data, instance=balancing)
        if not form.is_valid():
            raise InvalidSettings(_errors(form))
        form.save()
        if form.cleaned_data["enabled"] != charger.balancing_enabled:
            charger.balancing_enabled = form.cleaned_data["enabled"]
            charger.save(update_fields=["balancing_enabled"])
        old, new = changed(before, charger_balancing_dict(balancing))
        if new or created:
            record(
                principal,
                "charger.balancing.update",
                charge_box_id,
                before=old if not created else None,
                after=new if not created else charger_balancing_dict(balancing),
                outcome="charger registered" if created else "",
            )
    return balancing


def set_balancing_enabled(principal: Principal | None, chargers: list[Charger], enabled: bool) -> int:
    """Bulk switch (admin action); one audit entry per charger that changed."""
    count = 0
    with transaction.atomic():
        for charger in chargers:
            if charger.balancing_enabled == enabled:
                continue
            Charger.objects.filter(pk=charger.pk).update(balancing_enabled=enabled)
            ChargerBalancing.objects.get_or_create(charger=charger)
            record(
                principal,
                "charger.balancing.update",
                charger.charge_box_id,
                before={"enabled": not enabled},
                after={"enabled": enabled},
            )
            count += 1
    return count
