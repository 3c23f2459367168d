"""Operator forms. Each saves only the fields it edits: the runtime writes the rest of the same
rows (a charger's live state, its connection flags) concurrently, and a whole-row save from a
page opened a minute ago would put stale values back."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from accounts.roles import ADMINISTER, OPERATE, Principal
from gateway.models import Charger, GatewaySettings

# Who may change which of a charger's settings (the same rule on the page and in the admin).
CHARGER_FIELD_RIGHTS = {"upstream_url": ADMINISTER, "balancing_enabled": OPERATE}


def editable_charger_fields(principal: Principal | None) -> list[str]:
    if principal is None:
        return []
    return [name for name, right in CHARGER_FIELD_RIGHTS.items() if principal.can(right)]


def model_fields(instance, names) -> dict:
    """The audit log's before/after of a form: the named fields' values, as JSON."""
    return {name: getattr(instance, name) for name in names}


class ChargerSettingsForm(forms.ModelForm):
    class Meta:
        model = Charger
        fields = ["upstream_url", "balancing_enabled"]
        labels = {"upstream_url": "CSMS URL", "balancing_enabled": "Load balancing"}
        help_texts = {
            "upstream_url": "ws:// or wss:// base URL of this charger's CSMS; blank uses the site default. "
            "Takes effect when the charger next connects.",
            "balancing_enabled": "Let LinkRay limit this charger's current to keep the site within its limits.",
        }
        widgets = {"upstream_url": forms.TextInput(attrs={"placeholder": "wss://csms.example.com/ocpp", "size": 48})}

    def __init__(self, *args, editable: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Fields the person may not change are shown disabled; Django ignores posted values for them.
        self.editable = list(self.Meta.fields) if editable is None else [name for name in self.Meta.fields if name in editable]
        for name, field in self.fields.items():
            if name not in self.editable:
                field.disabled = True

    def save(self, commit: bool = True) -> Charger:
        charger = super().save(commit=False)
        if commit and self.editable:
            charger.save(update_fields=self.editable)
        return charger


class GatewaySettingsForm(forms.ModelForm):
    class Meta:
        model = GatewaySettings
        fields = ["accept_unknown_chargers", "offline_authorization"]
        labels = {
            "accept_unknown_chargers": "Accept unknown chargers",
            "offline_authorization": "Offline authorization",
        }
        widgets = {"offline_authorization": forms.RadioSelect}

    def save(self, commit: bool = True) -> GatewaySettings:
        settings = super().save(commit=False)
        if commit:
            settings.save(update_fields=self.Meta.fields)
        return settings


class SessionFilterForm(forms.Form):
    """Filters of the finished-sessions list and its CSV export (GET parameters)."""

    charge_box_id = forms.CharField(label="Charger", required=False, max_length=255)
    id_tag = forms.CharField(label="idTag", required=False, max_length=20)
    date_from = forms.DateField(label="Started from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="Started until", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """Keyword arguments of selectors.finished_sessions; dates are whole days in the site's
        time zone (`until` includes its day)."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        started_from = started_before = None
        if data.get("date_from"):
            started_from = datetime.combine(data["date_from"], time.min, tzinfo=zone)
        if data.get("date_to"):
            started_before = datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=zone)
        return {
            "charge_box_id": data.get("charge_box_id") or "",
            "id_tag": data.get("id_tag") or "",
            "started_from": started_from,
            "started_before": started_before,
        }
