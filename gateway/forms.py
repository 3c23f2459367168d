"""Operator forms. Each saves only the fields it edits: the runtime writes the rest of the same
rows (a charger's live state, its connection flags) concurrently, and a whole-row save from a
page opened a minute ago would put stale values back."""

from __future__ import annotations

from django import forms

from gateway.models import Charger, GatewaySettings


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

    def save(self, commit: bool = True) -> Charger:
        charger = super().save(commit=False)
        if commit:
            charger.save(update_fields=self.Meta.fields)
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
