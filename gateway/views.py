"""The operator's pages. Thin: read through gateway.selectors, write through gateway.forms.

Live parts are htmx partials: the page polls its own URL with `HX-Request`, and the view then
renders only the fragment. `Vary: HX-Request` keeps a browser cache from mixing up the two.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import right_required
from accounts.roles import ADMINISTER, VIEW_SITE
from audit.services import changed, record
from gateway import selectors
from gateway.forms import ChargerSettingsForm, GatewaySettingsForm, editable_charger_fields, model_fields
from gateway.models import GatewaySettings
from linkray_site.htmx import render_page_or_partial


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def dashboard(request):
    return render_page_or_partial(
        request, "gateway/dashboard.html", "gateway/_dashboard_live.html", selectors.dashboard(timezone.now())
    )


@right_required(VIEW_SITE)
@require_http_methods(["GET", "POST"])
def charger(request, charge_box_id: str):
    detail = selectors.charger_page(charge_box_id, timezone.now())
    if detail is None:
        raise Http404(f"No charger {charge_box_id!r} has connected or been registered.")
    editable = editable_charger_fields(request.principal)
    if request.method == "POST":
        if not editable:
            raise PermissionDenied("Changing a charger's settings needs the 'operate' right.")
        charger_row = detail["charger"]
        before = model_fields(charger_row, ChargerSettingsForm.Meta.fields)
        form = ChargerSettingsForm(request.POST, instance=charger_row, editable=editable)
        if form.is_valid():
            form.save()
            before, after = changed(before, model_fields(charger_row, ChargerSettingsForm.Meta.fields))
            if after is not None:
                record(request.principal, "charger.settings.update", charge_box_id, before=before, after=after)
            messages.success(request, f"Settings of {charge_box_id} saved.")
            return redirect("charger", charge_box_id=charge_box_id)
    else:
        form = ChargerSettingsForm(instance=detail["charger"], editable=editable)
    status = 400 if form.is_bound else 200
    context = {"detail": detail, "form": form}
    return render_page_or_partial(request, "gateway/charger.html", "gateway/_charger_live.html", context, status)


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def charger_queue(request, charge_box_id: str):
    queue = selectors.queue_page(charge_box_id, request.GET.get("page"))
    if queue is None:
        raise Http404(f"No charger {charge_box_id!r} has connected or been registered.")
    return render_page_or_partial(request, "gateway/queue.html", "gateway/_queue_live.html", queue)


@right_required(ADMINISTER)
@require_http_methods(["GET", "POST"])
def gateway_settings(request):
    settings = GatewaySettings.load()
    before = model_fields(settings, GatewaySettingsForm.Meta.fields)
    form = GatewaySettingsForm(request.POST if request.method == "POST" else None, instance=settings)
    if form.is_bound and form.is_valid():
        form.save()
        before, after = changed(before, model_fields(settings, GatewaySettingsForm.Meta.fields))
        if after is not None:
            record(request.principal, "gateway.settings.update", "gateway", before=before, after=after)
        messages.success(request, "Gateway settings saved.")
        return redirect("gateway-settings")
    context = {"form": form, "authorization_cache": selectors.authorization_cache(request.GET.get("page"))}
    return render(request, "gateway/settings.html", context, status=400 if form.is_bound else 200)
