from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from meters.polling import Connection
from meters.registers import SERIAL_BAUDRATES


def default_poll_interval_s() -> float:
    return settings.LINKRAY_METER_POLL_INTERVAL_S


def default_stale_after_s() -> float:
    return settings.LINKRAY_METER_STALE_AFTER_S


def default_timeout_s() -> float:
    return settings.LINKRAY_METER_TIMEOUT_S


class Meter(models.Model):
    """A meter on the site's RS-485 line or network, and what it measures for LinkRay."""

    class Role(models.TextChoices):
        GRID = "grid", "Grid connection point"
        PV = "pv", "PV inverter"
        BUILDING = "building", "Building"
        CHARGER_GROUP = "charger_group", "Charger group"
        OTHER = "other", "Other"

    class Transport(models.TextChoices):
        RTU = "rtu", "Modbus RTU (serial RS-485)"
        TCP = "tcp", "Modbus TCP"
        RTU_OVER_TCP = "rtu_over_tcp", "Modbus RTU over TCP (serial-to-Ethernet gateway)"

    class Parity(models.TextChoices):
        NONE = "N", "None"
        EVEN = "E", "Even"
        ODD = "O", "Odd"

    name = models.CharField(max_length=100, unique=True)
    model_key = models.CharField("model", max_length=40, help_text="Register map (meters/maps or your meter_maps folder).")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.GRID)
    enabled = models.BooleanField(default=True)
    transport = models.CharField(max_length=16, choices=Transport.choices, default=Transport.RTU)
    host = models.CharField(max_length=255, blank=True, help_text="TCP: the meter's or gateway's address.")
    port = models.PositiveIntegerField(
        default=502, validators=[MinValueValidator(1), MaxValueValidator(65535)], help_text="TCP port (502 is usual)."
    )
    serial_port = models.CharField(max_length=255, blank=True, help_text="RTU: e.g. /dev/ttyUSB0.")
    baudrate = models.PositiveIntegerField(default=9600, choices=[(rate, str(rate)) for rate in SERIAL_BAUDRATES])
    parity = models.CharField(max_length=1, choices=Parity.choices, default=Parity.NONE)
    stopbits = models.PositiveSmallIntegerField(default=1, choices=[(1, "1"), (2, "2")])
    unit_id = models.PositiveSmallIntegerField(
        "unit id", default=1, validators=[MinValueValidator(1), MaxValueValidator(247)], help_text="Modbus address 1-247."
    )
    poll_interval_s = models.FloatField(
        "poll interval (s)", default=default_poll_interval_s, validators=[MinValueValidator(0.2), MaxValueValidator(3600)]
    )
    stale_after_s = models.FloatField(
        "stale after (s)",
        default=default_stale_after_s,
        validators=[MinValueValidator(0.5), MaxValueValidator(86400)],
        help_text="A reading older than this is never used as fresh; balancing falls back to its failsafe.",
    )
    timeout_s = models.FloatField(
        "answer timeout (s)", default=default_timeout_s, validators=[MinValueValidator(0.05), MaxValueValidator(30)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["role"],
                condition=models.Q(role="grid"),
                name="one_grid_meter_per_site",
                violation_error_message="This site already has a grid meter; give this one another role.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.transport == self.Transport.RTU and not self.serial_port.strip():
            errors["serial_port"] = "A serial meter needs its port, e.g. /dev/ttyUSB0."
        if self.transport != self.Transport.RTU and not self.host.strip():
            errors["host"] = "A TCP meter needs the host name or IP address of the meter or gateway."
        if self.poll_interval_s is not None and self.stale_after_s is not None and self.stale_after_s <= self.poll_interval_s:
            errors["stale_after_s"] = "Must be longer than the poll interval, or every reading would count as stale."
        if errors:
            raise ValidationError(errors)

    def connection(self) -> Connection:
        return Connection(
            transport=self.transport,
            host=self.host.strip(),
            port=self.port,
            serial_port=self.serial_port.strip(),
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            timeout_s=self.timeout_s,
        )


class MeterHistory(models.Model):
    """One meter's readings over one bucket (LINKRAY_METER_HISTORY_BUCKET_S, 10 s by default).

    `values` is {quantity: [average, minimum, maximum, samples]}, e.g.
    {"current_a.l1": [12.1, 11.8, 12.6, 10], ...}. Pruned after LINKRAY_METER_HISTORY_RETENTION_H.
    """

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="history")
    start_at = models.DateTimeField()
    samples = models.PositiveIntegerField(default=0)
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["meter", "start_at"]
        constraints = [models.UniqueConstraint(fields=["meter", "start_at"], name="one_history_bucket_per_meter")]
        indexes = [models.Index(fields=["start_at"], name="meter_history_start_at")]
        verbose_name_plural = "meter history"

    def __str__(self) -> str:
        return f"{self.meter_id}@{self.start_at:%Y-%m-%d %H:%M:%S}"
