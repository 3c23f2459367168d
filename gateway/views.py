"""The operator's pages. Thin: read through gateway.selectors, write through gateway.forms.

Live parts are htmx partials: the page polls its own URL with `HX-Request`, and the view then
renders only the fragment. `Vary: HX-Request` keeps a browser cache from mixing up the two.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from gateway import selectors
from gateway.forms import ChargerSettingsForm, GatewaySettingsForm
from gateway.models import GatewaySettings
from linkray_site.htmx import render_page_or_partial


@login_required
@require_http_methods(["GET"])
def dashboard(request):
    return render_page_or_partial(
        request, "gateway/dashboard.html", "gateway/_dashboard_live.html", selectors.dashboard(timezone.now())
    )


@login_required
@require_http_methods(["GET", "POST"])
def charger(request, charge_box_id: str):
    detail = selectors.charger_page(charge_box_id, timezone.now())
    if detail is None:
        raise Http404(f"No charger {charge_box_id!r} has connected or been registered.")
    if request.method == "POST":
        form = ChargerSettingsForm(request.POST, instance=detail["charger"])
        if form.is_valid():
            form.save()
            messages.success(request, f"Settings of {charge_box_id} saved.")
            return redirect("charger", charge_box_id=charge_box_id)
    else:
        form = ChargerSettingsForm(instance=detail["charger"])
    status = 400 if form.is_bound else 200
    context = {"detail": detail, "form": form}
    return render_page_or_partial(request, "gateway/charger.html", "gateway/_charger_live.html", context, status)


@login_required
@require_http_methods(["GET"])
def charger_queue(request, charge_box_id: str):
    queue = selectors.queue_page(charge_box_id, request.GET.get("page"))
    if queue is None:
        raise Http404(f"No charger {charge_box_id!r} has connected or been registered.")
    return render_page_or_partial(request, "gateway/queue.html", "gateway/_queue_live.html", queue)


@login_required
@require_http_methods(["GET", "POST"])
def gateway_settings(request):
    settings = GatewaySettings.load()
    form = GatewaySettingsForm(request.POST if request.method == "POST" else None, instance=settings)
    if form.is_bound and form.is_valid():
        form.save()
        messages.success(request, "Gateway settings saved.")
        return redirect("gateway-settings")
    context = {"form": form, "authorization_cache": selectors.authorization_cache(request.GET.get("page"))}
    return render(request, "gateway/settings.html", context, status=400 if form.is_bound else 200)
