"""The rules of balancing's settings, in one place: the pages use these forms directly, the JSON
API validates through them (balancing.services), so both refuse the same input the same way."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from balancing.models import ChargerBalancing, SiteSettings
from linkray_site.electrical import SITE_PHASES, parse_wiring

# IEC 61851-1: an AC charger cannot be limited between 0 and 6 A (pause or >= 6 A).
AC_MIN_CURRENT_A = 6.0

SITE_FIELDS = ["grid_limit_a", "grid_limit_kw", "margin_a", "failsafe_current_a", "nominal_voltage_v", "control_period_s"]
CHARGER_FIELDS = ["kind", "phases", "min_current_a", "max_current_a", "max_power_w", "priority", "rate_unit"]


def _within_range(form: forms.ModelForm, name: str, value) -> bool:
    """The model field's own range check, ahead of the model validation that runs after clean():
    a value refused there must not also raise a comparison error on the field it is compared with."""
    try:
        form._meta.model._meta.get_field(name).run_validators(value)
    except ValidationError:
        return False
    return True


class SiteSettingsForm(forms.ModelForm):
    class Meta:
        model = SiteSettings
        fields = SITE_FIELDS
        labels = {
            "grid_limit_a": "Grid limit per phase (A)",
            "grid_limit_kw": "Import cap (kW)",
            "margin_a": "Margin (A)",
            "failsafe_current_a": "Failsafe current per charger (A)",
            "nominal_voltage_v": "Nominal phase voltage (V)",
            "control_period_s": "Control period (s)",
        }

    def clean_failsafe_current_a(self):
        value = self.cleaned_data["failsafe_current_a"]
        if value is not None and 0 < value < AC_MIN_CURRENT_A:
            raise forms.ValidationError("must be 0 (pause) or at least 6 A: chargers cannot run between 0 and 6 A")
        return value

    def clean(self):
        cleaned = super().clean()
        limit_a, margin_a = cleaned.get("grid_limit_a"), cleaned.get("margin_a")
        if (limit_a is not None and margin_a is not None and margin_a >= limit_a
                and _within_range(self, "grid_limit_a", limit_a) and _within_range(self, "margin_a", margin_a)):
            self.add_error("margin_a", "must be smaller than the grid limit")
        return cleaned

    def save(self, commit: bool = True) -> SiteSettings:
        settings = super().save(commit=False)
        if commit:
            settings.save(update_fields=[*SITE_FIELDS, "updated_at"])
        return settings


class PhasesField(forms.Field):
    """A list of site phases; the page types them as "L2, L3, L1", the API sends a list."""

    def to_python(self, value):
        if value in (None, ""):
            return []
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError(f"expected a list of site phases such as {list(SITE_PHASES)}")
        return [item.strip().upper() for item in value]

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value


class ChargerBalancingForm(forms.ModelForm):
    enabled = forms.BooleanField(required=False, label="Balanced by LinkRay")
    phases = PhasesField(
        required=False,
        help_text="Site phases its L1[, L2, L3] are wired to, e.g. L2 for a 1-phase charger on L2. Empty: L1, L2, L3.",
    )

    class Meta:
        model = ChargerBalancing
        fields = CHARGER_FIELDS
        labels = {
            "min_current_a": "Minimum (A)",
            "max_current_a": "Maximum (A, AC)",
            "max_power_w": "Maximum power (W, DC)",
            "rate_unit": "Profile unit",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rate_unit"].required = False
        self.fields["rate_unit"].choices = [("", "as the charger allows"), *ChargerBalancing.RateUnit.choices]
        if self.instance.pk and "enabled" not in self.initial:
            self.initial["enabled"] = self.instance.charger.balancing_enabled

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        phases = cleaned.get("phases")
        if kind and phases is not None and "phases" not in self.errors:
            try:
                parse_wiring(phases or (["L1"] if kind == "ac1" else []) or ["L1", "L2", "L3"], kind)
            except ValueError as error:
                self.add_error("phases", str(error))
        minimum, maximum = cleaned.get("min_current_a"), cleaned.get("max_current_a")
        if kind in ("ac1", "ac3"):
            if maximum is None and "max_current_a" not in self.errors:
                self.add_error("max_current_a", "an AC charger needs its maximum current")
            if minimum is not None and minimum < AC_MIN_CURRENT_A:
                self.add_error("min_current_a", "must be at least 6 A for an AC charger (IEC 61851-1)")
        if kind == "dc" and cleaned.get("max_power_w") is None and maximum is None and "max_power_w" not in self.errors:
            self.add_error("max_power_w", "a DC charger needs its maximum power (or a maximum current)")
        if (minimum is not None and maximum is not None and minimum > maximum
                and "min_current_a" not in self.errors and _within_range(self, "max_current_a", maximum)):
            self.add_error("min_current_a", "must not exceed the maximum current")
        return cleaned
