"""Balancing's live parts rendered into the page itself on first load (the dashboard's site
panel, the charger page's decision), so the page says what it knows at once, without waiting
for htmx's first poll (and without JavaScript). The polls then refresh them in place."""

from __future__ import annotations

from django import template
from django.utils import timezone

from balancing import selectors

register = template.Library()


@register.inclusion_tag("balancing/_site_panel.html")
def site_panel() -> dict:
    return {"site": selectors.site_status(timezone.now()), "balanced": selectors.balanced_chargers()}


@register.inclusion_tag("balancing/_charger_allocation.html")
def charger_allocation(charge_box_id: str) -> dict:
    return {"balancing": selectors.charger_balancing_by_id(charge_box_id), "charge_box_id": charge_box_id}


@register.inclusion_tag("balancing/_charger_form.html", takes_context=True)
def charger_balancing_form(context, charge_box_id: str) -> dict:
    from balancing.views import charger_balancing_page_form

    return {"form": charger_balancing_page_form(charge_box_id), "charge_box_id": charge_box_id, "csrf_token": context.get("csrf_token")}
