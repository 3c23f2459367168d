"""The audit log page (filters, pages of 50) and its CSV export with the same filters."""

from __future__ import annotations

import csv
import json

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.access import right_required
from accounts.roles import VIEW_SITE
from audit.forms import AuditFilterForm
from audit.selectors import CSV_COLUMNS, audit_entries

PAGE_SIZE = 50
# A spreadsheet runs a cell starting with one of these as a formula: prefix it so it reads as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def audit_log(request):
    form = AuditFilterForm(request.GET)
    entries = audit_entries(form.audit_filter())
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "audit/log.html", context, status=200 if form.is_valid() else 400)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@right_required(VIEW_SITE)
@require_http_methods(["GET"])
def audit_export(request):
    form = AuditFilterForm(request.GET)
    entries = audit_entries(form.audit_filter())
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for entry in entries.iterator(chunk_size=500):
            values = [getattr(entry, column) for column in CSV_COLUMNS]
            values[0] = entry.at.astimezone(timezone.get_current_timezone()).isoformat()
            yield writer.writerow([_cell(value) for value in values])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="linkray-audit-{timezone.localdate():%Y%m%d}.csv"'
    return response
