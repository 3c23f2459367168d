"""Reading the audit log: one filter for the page, its CSV export, the admin and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEntry

CSV_COLUMNS = ["at", "actor", "actor_kind", "address", "action", "target", "before", "after", "outcome"]


@dataclass(frozen=True)
class AuditFilter:
    """actor: exact name (`alice`, `token:ems`); action: exact, or a prefix ending in `.`
    (`charger.`); target: contains; since/until: a day (whole day, site time zone) or an
    instant, both inclusive."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: date | datetime | None = None
    until: date | datetime | None = None


def _start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    return timezone.make_aware(datetime.combine(value, time.min))


def _end_exclusive(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return _start(value) + timedelta(microseconds=1)
    return timezone.make_aware(datetime.combine(value + timedelta(days=1), time.min))


def audit_entries(audit_filter: AuditFilter) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    if audit_filter.actor:
        entries = entries.filter(actor=audit_filter.actor)
    if audit_filter.action:
        if audit_filter.action.endswith("."):
            entries = entries.filter(action__startswith=audit_filter.action)
        else:
            entries = entries.filter(action=audit_filter.action)
    if audit_filter.target:
        entries = entries.filter(target__icontains=audit_filter.target)
    if audit_filter.since is not None:
        entries = entries.filter(at__gte=_start(audit_filter.since))
    if audit_filter.until is not None:
        entries = entries.filter(at__lt=_end_exclusive(audit_filter.until))
    return entries


def entry_dict(entry: AuditEntry) -> dict:
    return {
        "id": entry.pk,
        "at": entry.at,
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "address": entry.address,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "outcome": entry.outcome,
    }
