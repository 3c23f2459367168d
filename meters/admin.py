from django.contrib import admin

from accounts.admin import RightsAdminMixin

from meters.forms import MeterForm
from meters.models import Meter, MeterHistory


@admin.register(Meter)
class MeterAdmin(RightsAdminMixin, admin.ModelAdmin):
    form = MeterForm  # the same validation as the meters page (model from the catalog, line checks)
    list_display = ("name", "model_key", "role", "transport", "unit_id", "poll_interval_s", "enabled")
    list_filter = ("role", "transport", "enabled")
    search_fields = ("name", "model_key", "host", "serial_port")


@admin.register(MeterHistory)
class MeterHistoryAdmin(RightsAdminMixin, admin.ModelAdmin):
    change_right = add_right = delete_right = None
    list_display = ("meter", "start_at", "samples")
    list_filter = ("meter",)
    date_hierarchy = "start_at"
    readonly_fields = ("meter", "start_at", "samples", "values")
