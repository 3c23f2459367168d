"""`GET /api/audit`: the audit log as JSON, with the page's filters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from channels.db import database_sync_to_async
from ninja import Field, Query, Router
from pydantic import field_validator

from audit.selectors import AuditFilter, audit_entries, entry_dict
from linkray_site.api import REFUSALS, StrictSchema, require_view

router = Router(tags=["audit log"])


class AuditQuery(StrictSchema):
    actor: str = Field(default="", max_length=150, description="exact: a username or token:<name>")
    action: str = Field(default="", max_length=64, description="exact, or a prefix ending in '.'")
    target: str = Field(default="", max_length=255, description="contains")
    since: date | datetime | None = Field(default=None, description="a day (whole day) or an instant, inclusive")
    until: date | datetime | None = Field(default=None, description="a day (whole day) or an instant, inclusive")
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000_000)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _day_or_instant(cls, value):
        # "2026-12-02" is the whole day; anything with a time is that instant (even midnight).
        if isinstance(value, str) and ("T" in value or " " in value.strip()):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("expected a day (2026-12-02) or a time (2026-12-02T10:00)") from None
        return value


class AuditEntryOut(StrictSchema):
    id: int
    at: datetime
    actor: str
    actor_kind: str
    address: str
    action: str
    target: str
    before: Any
    after: Any
    outcome: str


class AuditPageOut(StrictSchema):
    count: int
    limit: int
    offset: int
    entries: list[AuditEntryOut]


@router.get(
    "/audit",
    response={200: AuditPageOut, **REFUSALS},
    summary="The audit log, newest first",
)
async def audit_list(request, query: Query[AuditQuery]):
    require_view(request)
    audit_filter = AuditFilter(query.actor, query.action, query.target, query.since, query.until)

    def page():
        entries = audit_entries(audit_filter)
        rows = [entry_dict(entry) for entry in entries[query.offset : query.offset + query.limit]]
        return {"count": entries.count(), "limit": query.limit, "offset": query.offset, "entries": rows}

    return await database_sync_to_async(page)()
