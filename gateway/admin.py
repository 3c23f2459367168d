"""Admin for the gateway's models. The runtime owns most columns (live state, connection flags,
journal, replay queue): those are read-only here, and saving a charger writes only the fields
the operator changed, so a save never puts back a stale connection state."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import RightsAdminMixin
from accounts.roles import ADMINISTER, OPERATE
from gateway.models import AuthorizationCacheEntry, Charger, GatewaySettings, JournalEntry, QueuedMessage, TransactionRecord


class ReadOnlyAdmin(RightsAdminMixin, admin.ModelAdmin):
    """Rows the gateway writes: the operator looks, and never edits, adds or deletes."""

    change_right = add_right = delete_right = None


@admin.register(Charger)
class ChargerAdmin(RightsAdminMixin, admin.ModelAdmin):
    # Balancing needs OPERATE; the CSMS URL, registering and removing a charger ADMINISTER.
    change_right = OPERATE
    audit_name = "charger"

    list_display = [
        "charge_box_id",
        "charger_connected",
        "csms_state",
        "csms_down_since",
        "last_seen_at",
        "vendor",
        "model",
        "firmware_version",
        "balancing_enabled",
    ]
    list_filter = ["charger_connected", "csms_state", "balancing_enabled", "vendor"]
    search_fields = ["charge_box_id", "vendor", "model", "serial_number"]
    editable_fields = ["charge_box_id", "upstream_url", "balancing_enabled"]
    readonly_fields = [
        "vendor",
        "model",
        "serial_number",
        "firmware_version",
        "charger_connected",
        "charger_connected_at",
        "charger_disconnected_at",
        "csms_state",
        "csms_down_since",
        "last_seen_at",
        "state",
        "created_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        # The charge box id is the charger's identity on both legs: set once, when registering.
        fields = [*self.readonly_fields, "charge_box_id"] if obj is not None else list(self.readonly_fields)
        if not self._holds(request, ADMINISTER):
            fields.append("upstream_url")
        return fields

    def _target(self, obj) -> str:
        return obj.charge_box_id

    def write_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=[name for name in form.changed_data if name in self.editable_fields])
        else:
            obj.save()


@admin.register(TransactionRecord)
class TransactionRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "charger",
        "connector_id",
        "transaction_id",
        "csms_transaction_id",
        "id_tag",
        "started_at",
        "stopped_at",
        "meter_start_wh",
        "meter_stop_wh",
        "started_offline",
    ]
    list_filter = ["started_offline", "stop_reason"]
    list_select_related = ["charger"]
    search_fields = ["charger__charge_box_id", "id_tag", "=transaction_id", "=csms_transaction_id"]
    date_hierarchy = "started_at"


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "charge_box_id", "direction", "message_type", "action", "unique_id"]
    list_filter = ["direction", "charge_box_id"]
    search_fields = ["=charge_box_id", "=unique_id", "action"]
    date_hierarchy = "at"
    # The journal holds up to millions of rows: no full count on every page.
    show_full_result_count = False


@admin.register(QueuedMessage)
class QueuedMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "charge_box_id", "received_at", "action", "unique_id", "attempts", "local_transaction_id"]
    list_filter = ["action", "charge_box_id"]
    search_fields = ["=charge_box_id", "=unique_id"]
    ordering = ["id"]


@admin.register(AuthorizationCacheEntry)
class AuthorizationCacheEntryAdmin(RightsAdminMixin, admin.ModelAdmin):
    audit_name = "authorization_cache"

    list_display = ["id_tag", "status", "expiry_date", "parent_id_tag", "updated_at"]
    list_filter = ["status"]
    search_fields = ["id_tag", "parent_id_tag"]


@admin.register(GatewaySettings)
class GatewaySettingsAdmin(RightsAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "accept_unknown_chargers", "offline_authorization"]
    delete_right = None
    audit_name = "gateway.settings"

    def has_add_permission(self, request) -> bool:
        # One row, created on first use by GatewaySettings.load().
        return super().has_add_permission(request) and not GatewaySettings.objects.exists()
