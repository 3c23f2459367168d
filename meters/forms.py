import re

from django import forms

from linkray_site.addresses import host_problem
from meters.catalog import catalog
from meters.models import Meter

_SERIAL_PORT = re.compile(r"^/[^\s]+$|^COM\d{1,3}$|^(?:rfc2217|socket)://[^\s/]+:\d{1,5}$")


class MeterForm(forms.ModelForm):
    model_key = forms.ChoiceField(label="Model", choices=())

    class Meta:
        model = Meter
        fields = [
            "name",
            "model_key",
            "role",
            "enabled",
            "transport",
            "host",
            "port",
            "serial_port",
            "baudrate",
            "parity",
            "stopbits",
            "unit_id",
            "poll_interval_s",
            "stale_after_s",
            "timeout_s",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = catalog().choices()
        current = self.instance.model_key if self.instance.pk else ""
        if current and current not in dict(choices):
            # Keep a meter whose map disappeared editable; saving asks for a valid model.
            choices = [(current, f"{current} (map missing)"), *choices]
        self.fields["model_key"].choices = choices

    def clean_model_key(self) -> str:
        key = self.cleaned_data["model_key"]
        if catalog().get(key) is None:
            raise forms.ValidationError(f"No register map {key!r}; pick a model from the list.")
        return key

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        problem = host_problem(host) if host else None
        if problem is not None:
            raise forms.ValidationError(problem)
        return host

    def clean_serial_port(self) -> str:
        port = self.cleaned_data["serial_port"].strip()
        if port and not _SERIAL_PORT.match(port):
            raise forms.ValidationError("Enter a device path such as /dev/ttyUSB0 or /dev/serial/by-id/...")
        return port

    def clean(self):
        cleaned = super().clean()
        transport = cleaned.get("transport")
        others = Meter.objects.exclude(pk=self.instance.pk).filter(enabled=True, transport=transport)
        if not cleaned.get("enabled"):
            return cleaned
        if transport == Meter.Transport.RTU and cleaned.get("serial_port"):
            for other in others.filter(serial_port=cleaned["serial_port"]):
                line = (other.baudrate, other.parity, other.stopbits)
                if line != (cleaned.get("baudrate"), cleaned.get("parity"), cleaned.get("stopbits")):
                    self.add_error(
                        "baudrate",
                        f"Meter {other.name} on this port uses {other.baudrate} baud {other.parity}{other.stopbits}: "
                        "all meters on one RS-485 line must use the same settings.",
                    )
                if other.unit_id == cleaned.get("unit_id"):
                    self.add_error("unit_id", f"Meter {other.name} already uses unit id {other.unit_id} on this line.")
        elif transport and cleaned.get("host"):
            for other in others.filter(host=cleaned["host"], port=cleaned.get("port"), unit_id=cleaned.get("unit_id")):
                self.add_error("unit_id", f"Meter {other.name} already uses unit id {other.unit_id} at this address.")
        return cleaned
