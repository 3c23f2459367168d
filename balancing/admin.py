"""Admin: site settings, setpoints, and the gateway's charger list with each charger's balancing
settings, allocation and reason, filters, and audited bulk enable/disable actions."""

from __future__ import annotations

from django.contrib import admin, messages

from accounts.access import request_principal
from accounts.admin import RightsAdminMixin
from accounts.roles import OPERATE, WRITE_SETPOINT
from audit.services import changed, record
from balancing import services
from balancing.forms import CHARGER_FIELDS, SITE_FIELDS, ChargerBalancingForm, SiteSettingsForm
from balancing.models import ChargerBalancing, Setpoint, SiteSettings
from gateway.admin import ChargerAdmin
from gateway.models import Charger


class ChargerBalancingAdminForm(ChargerBalancingForm):
    """The API's and pages' rules; the on/off switch is the charger list's (and actions')."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["enabled"]


# The same rights as the site page and the API (accounts.roles): every role reads, operators
# change site limits and per-charger balancing, setpoints are cleared with the setpoint right.
@admin.register(SiteSettings)
class SiteSettingsAdmin(RightsAdminMixin, admin.ModelAdmin):
    change_right = add_right = OPERATE
    delete_right = None
    form = SiteSettingsForm  # the same rules as the API and the site page
    list_display = ["__str__", *SITE_FIELDS]

    def has_add_permission(self, request, *args) -> bool:
        return super().has_add_permission(request) and not SiteSettings.objects.exists()

    def save_model(self, request, obj, form, change):
        before = services.site_dict(SiteSettings.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        old, new = changed(before, services.site_dict(obj)) if before else (None, services.site_dict(obj))
        if new:
            record(request_principal(request), "site.update", "site", before=old, after=new, outcome="admin")


@admin.register(Setpoint)
class SetpointAdmin(RightsAdminMixin, admin.ModelAdmin):
    # Set through the API (PUT /api/site/setpoint); the admin only clears it.
    change_right = add_right = None
    delete_right = WRITE_SETPOINT
    list_display = ["set_at", "max_import_a", "max_import_kw", "valid_until", "set_by"]
    readonly_fields = ["set_at", "set_by"]

    def delete_model(self, request, obj):
        record(request_principal(request), "site.setpoint.clear", "site", before=services.setpoint_dict(obj), outcome="admin")
        super().delete_model(request, obj)


@admin.register(ChargerBalancing)
class ChargerBalancingAdmin(RightsAdminMixin, admin.ModelAdmin):
    """Each charger's balancing settings (added from the charger list's actions or the API)."""

    change_right = OPERATE
    add_right = delete_right = None
    form = ChargerBalancingAdminForm
    list_display = ["charger", "kind", "phases", "min_current_a", "max_current_a", "max_power_w", "priority", "limit_a", "reason", "controllable"]
    list_filter = ["kind", "controllable", "reason"]
    list_select_related = ["charger"]
    search_fields = ["charger__charge_box_id"]
    fields = ["charger", "kind", "phases", "min_current_a", "max_current_a", "max_power_w", "priority", "rate_unit",
              "limit_a", "limit_w", "reason", "controllable", "not_controllable_reason", "sent_limit", "sent_unit", "sent_at"]
    readonly_fields = ["charger", "limit_a", "limit_w", "reason", "controllable", "not_controllable_reason", "sent_limit", "sent_unit", "sent_at"]

    def save_model(self, request, obj, form, change):
        before = services.charger_balancing_dict(ChargerBalancing.objects.select_related("charger").get(pk=obj.pk))
        fields = [name for name in form.changed_data if name in CHARGER_FIELDS]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])
        old, new = changed(before, services.charger_balancing_dict(obj))
        if new:
            record(request_principal(request), "charger.balancing.update", obj.charger.charge_box_id, before=old, after=new, outcome="admin")


class BalancingReasonFilter(admin.SimpleListFilter):
    title = "allocation reason"
    parameter_name = "allocation_reason"

    def lookups(self, request, model_admin):
        reasons = ChargerBalancing.objects.exclude(reason="").values_list("reason", flat=True).distinct()
        return [(reason, reason) for reason in sorted(reasons)]

    def queryset(self, request, queryset):
        return queryset.filter(balancing__reason=self.value()) if self.value() else queryset


class BalancingChargerAdmin(ChargerAdmin):
    """The gateway's charger admin with balancing next to each charger."""

    list_select_related = ["balancing"]
    actions = ["enable_balancing", "disable_balancing"]

    def get_list_display(self, request):
        return [*super().get_list_display(request), "balancing_kind", "balancing_limits", "allocated_limit", "allocation_reason"]

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), "balancing__kind", "balancing__controllable", BalancingReasonFilter]

    @admin.display(description="kind / phases")
    def balancing_kind(self, charger):
        balancing = getattr(charger, "balancing", None)
        return f"{balancing.kind} {','.join(balancing.wiring_phases)}" if balancing else "-"

    @admin.display(description="min / max / priority")
    def balancing_limits(self, charger):
        balancing = getattr(charger, "balancing", None)
        if balancing is None:
            return "-"
        maximum = f"{balancing.max_power_w:g} W" if balancing.kind == "dc" and balancing.max_power_w else f"{balancing.max_current_a or 0:g} A"
        return f"{balancing.min_current_a:g} A / {maximum} / {balancing.priority}"

    @admin.display(description="limit")
    def allocated_limit(self, charger):
        balancing = getattr(charger, "balancing", None)
        return f"{balancing.limit_a:.1f} A" if balancing and balancing.limit_a is not None else "-"

    @admin.display(description="reason")
    def allocation_reason(self, charger):
        balancing = getattr(charger, "balancing", None)
        if balancing and not balancing.controllable:
            return f"not controllable: {balancing.not_controllable_reason}"
        return (balancing.reason if balancing else "") or "-"

    @admin.action(description="Enable balancing for the selected chargers")
    def enable_balancing(self, request, queryset):
        count = services.set_balancing_enabled(request_principal(request), list(queryset), True)
        self.message_user(request, f"Balancing enabled for {count} charger(s).", messages.SUCCESS)

    @admin.action(description="Disable balancing for the selected chargers")
    def disable_balancing(self, request, queryset):
        count = services.set_balancing_enabled(request_principal(request), list(queryset), False)
        self.message_user(request, f"Balancing disabled for {count} charger(s).", messages.SUCCESS)


admin.site.unregister(Charger)
admin.site.register(Charger, BalancingChargerAdmin)
