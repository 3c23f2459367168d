"""The operator's pages. Thin: read through gateway.selectors, write through gateway.forms.

Live parts are htmx partials: the page polls its own URL with `HX-Request`, and the view then
renders only the fragment. `Vary: HX-Request` keeps a browser cache from mixing up the two.
"""

from __future__ import annotations

import csv
import logging
from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import right_required
from accounts.roles import ADMINISTER, OPERATE, VIEW_SITE
from audit.services import changed, record
from gateway import selectors
from gateway.charger_actions import ActionError, action_from_form, answer_text
from gateway.commands import CallErrorReceived, CallTimedOut, ChargerNotConnected, CommandError, send_call_sync
from gateway.forms import ChargerSettingsForm, GatewaySettingsForm, SessionFilterForm, editable_charger_fields, model_fields
from gateway.models import Charger, GatewaySettings
from linkray_site.htmx import render_page_or_partial

logger = logging.getLogger(__name__)


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


# --- Finished sessions -------------------------------------------------------------------

SESSIONS_CSV_COLUMNS = (
    "charge_box_id", "connector_id", "transaction_id", "csms_transaction_id", "id_tag", "id_tag_status",
    "started_at", "stopped_at", "duration_s", "meter_start_wh", "meter_stop_wh", "energy_wh", "stop_reason",
    "started_offline",
)


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def sessions(request):
    form = SessionFilterForm(request.GET)
    valid = form.is_valid()
    context = {"form": form, "query": request.GET.urlencode()}
    if valid:
        context.update(selectors.sessions_page(form.filters(), request.GET.get("page")))
    else:
        context.update({"count": 0, "rows": [], "page": None, "charge_box_ids": []})
    return render(request, "gateway/sessions.html", context, status=200 if valid else 400)


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def sessions_csv(request):
    form = SessionFilterForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(messages_)}" for name, messages_ in form.errors.items())
        return HttpResponseBadRequest(f"Invalid filter: {errors}\n", content_type="text/plain; charset=utf-8")
    records = selectors.finished_sessions(**form.filters()).iterator(chunk_size=500)

    def lines():
        buffer = _LineBuffer()
        writer = csv.writer(buffer)
        writer.writerow(SESSIONS_CSV_COLUMNS)
        yield buffer.take()
        for record in records:
            row = selectors.session_row(record)
            writer.writerow([_csv_cell(row[column]) for column in SESSIONS_CSV_COLUMNS])
            yield buffer.take()

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="linkray-sessions-{timezone.localdate():%Y%m%d}.csv"'
    return response


class _LineBuffer:
    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> None:
        self._parts.append(text)

    def take(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


def _csv_cell(value) -> str:
    """Times as ISO 8601 in the site's time zone; text that a spreadsheet would run as a
    formula (an idTag is whatever a card says) is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- Actions on a charger ----------------------------------------------------------------


@right_required(OPERATE)
@require_http_methods(["POST"])
def charger_action(request, charge_box_id: str):
    """One button of the charger page: send its CALL, audit it, tell the operator the answer."""
    if not Charger.objects.filter(charge_box_id=charge_box_id).exists():
        raise Http404(f"No charger {charge_box_id!r} has connected or been registered.")
    back = reverse("charger", kwargs={"charge_box_id": charge_box_id}) + "#actions"
    try:
        action = action_from_form(request.POST)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect(back)
    try:
        answer = send_call_sync(charge_box_id, action.ocpp_action, action.payload)
    except ChargerNotConnected:
        outcome, text, agreed = "not connected", f"Not sent: {charge_box_id} is not connected.", False
    except CallTimedOut:
        outcome, text, agreed = "timed out", f"The charger did not answer {action.description} in time.", False
    except CallErrorReceived as error:
        outcome = f"CALLERROR {error.error_code}"
        text, agreed = f"The charger refused {action.description}: {error.error_code} {error.description}".strip() + ".", False
    except CommandError as error:
        outcome, text, agreed = "failed", f"Not sent: {error}.", False
    else:
        text, agreed = answer_text(action, answer)
        outcome = f"answered {answer.get('status', '') if isinstance(answer, dict) else ''}".strip()
    record(request.principal, action.audit_action, charge_box_id, after=action.payload, outcome=outcome)
    logger.info(
        "charger_action charge_box_id=%s action=%s outcome=%s actor=%s",
        charge_box_id, action.ocpp_action, outcome, request.principal.label,
    )
    (messages.success if agreed else messages.error)(request, text)
    return redirect(back)
