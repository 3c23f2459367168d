"""Meter pages: list with live readings, add/edit, detail with the 24-hour history.

Thin: reads through meters.selectors, writes through meters.forms. Live parts are htmx
partials: the page polls its own URL and gets only the fragment (`Vary: HX-Request`).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import right_required
from accounts.roles import ADMINISTER, VIEW_SITE
from audit.services import changed, record
from linkray_site.htmx import render_page_or_partial
from meters import selectors
from meters.catalog import catalog
from meters.charts import chart_window, history_table, meter_charts
from meters.forms import MeterForm
from meters.models import Meter

TABLE_STEP_S = 3600


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def meter_list(request):
    context = {"rows": selectors.meter_rows(timezone.now()), "map_errors": catalog().errors}
    return render_page_or_partial(request, "meters/list.html", "meters/_list_live.html", context)


@right_required(ADMINISTER)
@require_http_methods(["GET", "POST"])
def meter_add(request):
    return _edit(request, Meter())


@right_required(ADMINISTER)
@require_http_methods(["GET", "POST"])
def meter_edit(request, meter_id: int):
    return _edit(request, get_object_or_404(Meter, pk=meter_id))


def meter_audit_fields(meter: Meter) -> dict:
    return {name: getattr(meter, name) for name in MeterForm.Meta.fields}


def _edit(request, meter: Meter):
    creating = meter.pk is None
    before = None if creating else meter_audit_fields(meter)
    form = MeterForm(request.POST or None, instance=meter)
    if request.method == "POST" and form.is_valid():
        meter = form.save()
        before, after = changed(before, meter_audit_fields(meter))
        if after is not None:
            action = "meter.create" if creating else "meter.update"
            record(request.principal, action, f"meter:{meter.pk} {meter.name}", before=before, after=after)
        messages.success(request, f"Meter {meter.name} saved; polling picks it up within a few seconds.")
        return redirect("meter-detail", meter_id=meter.pk)
    defaults = {
        key: {
            "baudrate": meter_map.serial_defaults.baudrate,
            "parity": meter_map.serial_defaults.parity,
            "stopbits": meter_map.serial_defaults.stopbits,
            "unit_id": meter_map.serial_defaults.unit_id,
            "port": meter_map.tcp_port,
        }
        for key, meter_map in catalog().maps.items()
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "meters/form.html", {"form": form, "meter": meter, "defaults": defaults}, status=status)


@right_required(ADMINISTER)
@require_http_methods(["POST"])
def meter_delete(request, meter_id: int):
    meter = get_object_or_404(Meter, pk=meter_id)
    name = meter.name
    before = meter_audit_fields(meter)
    target = f"meter:{meter.pk} {name}"
    meter.delete()
    record(request.principal, "meter.delete", target, before=before)
    messages.success(request, f"Meter {name} deleted.")
    return redirect("meter-list")


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def meter_detail(request, meter_id: int):
    meter = get_object_or_404(Meter, pk=meter_id)
    now = timezone.now()
    row = selectors.meter_row(meter, selectors.meter_status(meter.pk), now)
    if request.htmx:
        return render_page_or_partial(request, "meters/detail.html", "meters/_detail_live.html", {"row": row})
    since = now - timedelta(hours=24)
    buckets = selectors.meter_history(meter.pk, since)
    phases = selectors.meter_phases(meter)
    chart_start, chart_step_s = chart_window(buckets[0][0] if buckets else None, now)
    current_chart, power_chart = meter_charts(
        buckets, phases, timezone.localtime(chart_start), timezone.localtime(now), chart_step_s
    )
    context = {
        "row": row,
        "current_chart": current_chart,
        "power_chart": power_chart,
        "table": history_table(buckets, phases, TABLE_STEP_S),
        "phases": [phase.upper() for phase in phases],
        "bucket_count": len(buckets),
        "chart_start": chart_start,
    }
    return render_page_or_partial(request, "meters/detail.html", "meters/_detail_live.html", context)
