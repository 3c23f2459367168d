"""Balancing's pages and live partials: the site panel on the dashboard, the site settings page,
the balancing part of the charger page. Thin: reads through balancing.selectors, writes through
balancing.services (audited), rules in balancing.forms."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import right_required
from accounts.roles import OPERATE, VIEW_SITE
from balancing import selectors, services
from balancing.forms import ChargerBalancingForm, SiteSettingsForm
from balancing.models import SiteSettings
from gateway.models import Charger


class ChargerBalancingPageForm(ChargerBalancingForm):
    """On the charger page the on/off switch is the charger settings' checkbox."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["enabled"]


def charger_balancing_page_form(charge_box_id: str) -> ChargerBalancingPageForm | None:
    """The charger page's balancing form, unbound (None for an unknown charger)."""
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    return ChargerBalancingPageForm(instance=services.balancing_for(charger)) if charger is not None else None


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def site_panel(request):
    context = {"site": selectors.site_status(timezone.now()), "balanced": selectors.balanced_chargers()}
    return render(request, "balancing/_site_panel.html", context)


@right_required(VIEW_SITE)
@require_http_methods(["GET", "POST"])
def site_settings(request):
    settings = SiteSettings.load()
    form = SiteSettingsForm(request.POST if request.method == "POST" else None, instance=settings)
    if request.method == "POST":
        if not request.principal.can(OPERATE):
            raise PermissionDenied(f"This needs the '{OPERATE}' right.")
        if form.is_valid() and _saved(form, lambda: services.update_site(request.principal, _changes(form))):
            messages.success(request, "Site limits saved; balancing uses them from its next cycle.")
            return redirect("balancing-site")
    context = {"form": form, "site": selectors.site_status(timezone.now())}
    return render(request, "balancing/site.html", context, status=400 if form.is_bound else 200)


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def charger_allocation(request, charge_box_id: str):
    view = selectors.charger_balancing_by_id(charge_box_id)
    if view is None:
        raise Http404(f"No charger {charge_box_id!r}.")
    return render(request, "balancing/_charger_allocation.html", {"balancing": view, "charge_box_id": charge_box_id})


@right_required(VIEW_SITE)
@require_http_methods(["GET", "POST"])
def charger_settings(request, charge_box_id: str):
    charger = Charger.objects.filter(charge_box_id=charge_box_id).first()
    if charger is None:
        raise Http404(f"No charger {charge_box_id!r}.")
    balancing = services.balancing_for(charger)
    form = ChargerBalancingPageForm(request.POST if request.method == "POST" else None, instance=balancing)
    if request.method == "POST":
        if not request.principal.can(OPERATE):
            raise PermissionDenied(f"This needs the '{OPERATE}' right.")
        if form.is_valid() and _saved(
            form, lambda: services.update_charger_balancing(request.principal, charge_box_id, _changes(form))
        ):
            messages.success(request, f"Balancing of {charge_box_id} saved.")
            return redirect(reverse("charger", kwargs={"charge_box_id": charge_box_id}) + "#balancing")
        return render(request, "balancing/charger.html", {"form": form, "charge_box_id": charge_box_id}, status=400)
    return render(request, "balancing/_charger_form.html", {"form": form, "charge_box_id": charge_box_id})


def _changes(form) -> dict:
    return {name: form.cleaned_data.get(name) for name in form.fields}


def _saved(form, save) -> bool:
    """Save through the audited service; its refusals become the form's errors."""
    try:
        save()
    except services.InvalidSettings as error:
        for name, message in error.fields.items():
            form.add_error(name if name in form.fields else None, message)
        return False
    return True
