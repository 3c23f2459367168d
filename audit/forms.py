"""The audit page's filter form: the query string of the page and of its CSV export."""

from __future__ import annotations



from django import forms
from django.utils.dateparse import parse_date, parse_datetime

from audit.selectors import AuditFilter


class DayOrInstantField(forms.CharField):
    """`2026-12-02` (a whole day) or `2026-12-02T10:00` (an instant)."""

    def to_python(self, value):
        value = super().to_python(value).strip()
        if not value:
            return None
        try:
            parsed = parse_datetime(value) if "T" in value or " " in value else parse_date(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise forms.ValidationError("Enter a day (2026-12-02) or a time (2026-12-02T10:00).")
        return parsed


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, label="Who")
    action = forms.CharField(required=False, max_length=64, help_text="exact, or a prefix ending in '.'")
    target = forms.CharField(required=False, max_length=255)
    since = DayOrInstantField(required=False, label="From", widget=forms.TextInput(attrs={"placeholder": "2026-12-01"}))
    until = DayOrInstantField(required=False, label="To", widget=forms.TextInput(attrs={"placeholder": "2026-12-31"}))

    def audit_filter(self) -> AuditFilter:
        """Valid input only: an invalid form filters nothing out but shows its errors."""
        if not self.is_valid():
            return AuditFilter(**{name: value for name, value in self.cleaned_data.items() if value})
        data = self.cleaned_data
        return AuditFilter(
            actor=data["actor"], action=data["action"], target=data["target"], since=data["since"], until=data["until"]
        )


