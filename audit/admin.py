from django.contrib import admin

from accounts.admin import RightsAdminMixin
from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(RightsAdminMixin, admin.ModelAdmin):
    """Read-only: the log is append-only; only retention prunes it."""

    change_right = add_right = delete_right = None
    list_display = ["at", "actor", "address", "action", "target", "outcome"]
    list_filter = ["action", "actor_kind", "actor"]
    search_fields = ["actor", "action", "target", "address"]
    date_hierarchy = "at"
    readonly_fields = ["at", "actor", "actor_kind", "address", "action", "target", "before", "after", "outcome"]
    actions = None
