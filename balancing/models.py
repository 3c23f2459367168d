"""Balancing configuration (site limits, energy-system setpoint, per-charger settings) and the
last decision per charger. The control loop reads these every cycle, so a change takes effect
within one control period without a restart.

Whether a charger is balanced at all has one source of truth: `gateway.Charger.balancing_enabled`
(the charger page's checkbox, the admin, the API); `ChargerBalancing.enabled` reads it.
"""

from __future__ import annotations

from datetime import datetime

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from gateway.models import Charger
from linkray_site.electrical import CHARGER_KINDS


class SiteSettings(models.Model):
    """The grid connection's limits (one row, created on first use)."""

    grid_limit_a = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text="Per-phase limit at the grid connection (main fuse), A. Unset: LinkRay does not balance.",
    )
    grid_limit_kw = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(100_000)],
        help_text="Total import cap over the three phases, kW (optional).",
    )
    margin_a = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1_000)], help_text="Kept free below the limit, A."
    )
    failsafe_current_a = models.FloatField(
        default=6,
        validators=[MinValueValidator(0), MaxValueValidator(1_000)],
        help_text="Per controlled charger while the grid meter's reading is stale or missing, A.",
    )
    nominal_voltage_v = models.FloatField(
        default=230, validators=[MinValueValidator(50), MaxValueValidator(1_000)], help_text="Phase voltage for A<->W, V."
    )
    control_period_s = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.2), MaxValueValidator(60)], help_text="Seconds between control cycles."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"

    @classmethod
    def load(cls) -> SiteSettings:
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


class Setpoint(models.Model):
    """An energy system's import limit, obeyed when lower than the site limit, until it expires."""

    max_import_a = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    max_import_kw = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Unset: until cleared.")
    set_by = models.CharField(max_length=150, blank=True)
    set_at = models.DateTimeField()

    class Meta:
        ordering = ["-set_at"]

    def __str__(self) -> str:
        limit = f"{self.max_import_a} A" if self.max_import_a is not None else f"{self.max_import_kw} kW"
        return f"setpoint {limit} until {self.valid_until or 'cleared'}"

    def active(self, now: datetime) -> bool:
        return self.valid_until is None or self.valid_until > now


class ChargerBalancing(models.Model):
    """How one charger is balanced, and what the control loop last decided for it."""

    class Kind(models.TextChoices):
        AC1 = "ac1", "AC, 1 phase"
        AC3 = "ac3", "AC, 3 phases"
        DC = "dc", "DC"

    class RateUnit(models.TextChoices):
        A = "A", "A (current per phase)"
        W = "W", "W (total power)"

    charger = models.OneToOneField(Charger, on_delete=models.CASCADE, related_name="balancing")
    kind = models.CharField(max_length=3, choices=Kind.choices, default=Kind.AC3)
    phases = models.JSONField(default=list, blank=True, help_text='Site phases of the charger\'s L1[, L2, L3], e.g. ["L2"].')
    min_current_a = models.FloatField(default=6, validators=[MinValueValidator(0), MaxValueValidator(1_000)])
    max_current_a = models.FloatField(
        null=True, blank=True, default=32, validators=[MinValueValidator(0), MaxValueValidator(1_000)]
    )
    max_power_w = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(10_000_000)])
    priority = models.IntegerField(default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)])
    rate_unit = models.CharField(max_length=1, choices=RateUnit.choices, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    # --- runtime, written by the control loop ---------------------------------------------
    limit_a = models.FloatField(null=True, blank=True, editable=False)
    limit_w = models.FloatField(null=True, blank=True, editable=False)
    reason = models.CharField(max_length=64, blank=True, editable=False)
    controllable = models.BooleanField(default=True, editable=False)
    not_controllable_reason = models.CharField(max_length=200, blank=True, editable=False)
    sent_limit = models.FloatField(null=True, blank=True, editable=False)
    sent_unit = models.CharField(max_length=1, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the charger's connection looked like when the limit was sent: a reconnect, a reboot
    # or a new transaction changes it, and the limit is sent again.
    sent_key = models.CharField(max_length=200, blank=True, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Rotation and lending (balancing.allocation): when LinkRay's limit last went 0 -> >0,
    # > 0 -> 0, and when the limit now in force was sent.
    charging_since_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_since_at = models.DateTimeField(null=True, blank=True, editable=False)
    limit_raised_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "charger balancing"

    def __str__(self) -> str:
        return f"balancing of {self.charger_id}"

    @property
    def enabled(self) -> bool:
        return self.charger.balancing_enabled

    @property
    def wiring_phases(self) -> list[str]:
        """The configured phases, or the natural wiring for the kind."""
        if self.phases:
            return list(self.phases)
        return ["L1"] if self.kind == self.Kind.AC1 else ["L1", "L2", "L3"]


assert set(CHARGER_KINDS) == set(ChargerBalancing.Kind.values)
