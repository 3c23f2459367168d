"""Meter pages: list with live readings, add/edit, detail with the 24-hour history.

Thin: reads through meters.selectors, writes through meters.forms. Live parts are htmx
partials: the page polls its own URL and gets only the fragment (`Vary: HX-Request`).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from linkray_site.htmx import render_page_or_partial
from meters import selectors
from meters.catalog import catalog
from meters.charts import chart_window, history_table, meter_charts
from meters.forms import MeterForm
from meters.models import Meter

TABLE_STEP_S = 3600


@login_required
@require_http_methods(["GET"])
def meter_list(request):
    context = {"rows": selectors.meter_rows(timezone.now()), "map_errors": catalog().errors}
    return render_page_or_partial(request, "meters/list.html", "meters/_list_live.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def meter_add(request):
    return _edit(request, Meter())


@login_required
@require_http_methods(["GET", "POST"])
def meter_edit(request, meter_id: int):
    return _edit(request, get_object_or_404(Meter, pk=meter_id))


def _edit(request, meter: Meter):
    form = MeterForm(request.POST or None, instance=meter)
    if request.method == "POST" and form.is_valid():
        meter = form.save()
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


@login_required
@require_http_methods(["POST"])
def meter_delete(request, meter_id: int):
    meter = get_object_or_404(Meter, pk=meter_id)
    name = meter.name
    meter.delete()
    messages.success(request, f"Meter {name} deleted.")
    return redirect("meter-list")


@login_required
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
