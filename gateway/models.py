from django.core.exceptions import ValidationError
from django.db import models

from linkray_site.env import ws_url_problem


def validate_upstream_url(value: str) -> None:
    """The same rule as LINKRAY_CSMS_URL, worded for the form: what to enter instead."""
    problem = ws_url_problem(value)
    if problem is not None:
        raise ValidationError(problem, code="invalid_ws_url")


class GatewaySettings(models.Model):
    """Site-wide gateway policy, edited by the operator (one row)."""

    class OfflineAuthorization(models.TextChoices):
        ACCEPT_ALL = "accept_all", "Accept any idTag"
        CACHE = "cache", "Accept idTags the CSMS accepted before"
        REJECT = "reject", "Reject every idTag"

    accept_unknown_chargers = models.BooleanField(
        default=True, help_text="Create chargers on first connection; off refuses unknown charge box ids."
    )
    offline_authorization = models.CharField(
        max_length=16,
        choices=OfflineAuthorization.choices,
        default=OfflineAuthorization.CACHE,
        help_text="How Authorize and StartTransaction are decided while the CSMS is unreachable.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "gateway settings"

    def __str__(self) -> str:
        return "Gateway settings"

    @classmethod
    def load(cls) -> "GatewaySettings":
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


class Charger(models.Model):
    class CsmsState(models.TextChoices):
        CONNECTED = "connected", "Connected"
        CONNECTING = "connecting", "Connecting"
        DOWN = "down", "Down"
        CLOSED = "closed", "Closed (charger offline)"
        NOT_CONFIGURED = "not_configured", "No CSMS configured"

    charge_box_id = models.CharField(max_length=255, unique=True)
    upstream_url = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_upstream_url],
        help_text="This charger's CSMS base URL (ws:// or wss://); blank uses the site's LINKRAY_CSMS_URL.",
    )
    # The Authorization header the charger last connected with, so LinkRay can hand the CSMS
    # the charger's queued messages even if the charger never comes back (orphan replay).
    upstream_authorization = models.CharField(max_length=500, blank=True, editable=False)
    # Which server process holds the charger's socket (scale-out: a process that died leaves
    # charger_connected set; its missing liveness key in the cache tells).
    served_by = models.CharField(max_length=100, blank=True, editable=False)
    balancing_enabled = models.BooleanField(default=False)
    vendor = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    serial_number = models.CharField(max_length=100, blank=True)
    firmware_version = models.CharField(max_length=100, blank=True)
    charger_connected = models.BooleanField(default=False)
    charger_connected_at = models.DateTimeField(null=True, blank=True)
    charger_disconnected_at = models.DateTimeField(null=True, blank=True)
    csms_state = models.CharField(max_length=16, choices=CsmsState.choices, default=CsmsState.CLOSED)
    csms_down_since = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # The live model (gateway.state.ChargerState) as last flushed.
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["charge_box_id"]

    def __str__(self) -> str:
        return self.charge_box_id


class TransactionRecord(models.Model):
    """A transaction as LinkRay saw it; `transaction_id` is the id the charger uses."""

    charger = models.ForeignKey(Charger, on_delete=models.CASCADE, related_name="transactions")
    connector_id = models.PositiveIntegerField()
    transaction_id = models.IntegerField()
    csms_transaction_id = models.IntegerField(null=True, blank=True)
    id_tag = models.CharField(max_length=20)
    id_tag_status = models.CharField(max_length=20, default="Accepted")
    meter_start_wh = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True)
    meter_stop_wh = models.BigIntegerField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    started_offline = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["charger", "transaction_id"], name="unique_transaction_per_charger")
        ]

    def __str__(self) -> str:
        return f"{self.charger_id}:{self.transaction_id}"


class JournalEntry(models.Model):
    """Every relayed frame, written in batches and pruned by age and count."""

    at = models.DateTimeField(db_index=True)
    charge_box_id = models.CharField(max_length=255, db_index=True)
    direction = models.CharField(max_length=16)
    message_type = models.PositiveSmallIntegerField(null=True)
    unique_id = models.CharField(max_length=36, blank=True)
    action = models.CharField(max_length=64, blank=True)
    raw = models.TextField()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.charge_box_id} {self.direction} {self.action}"


class QueuedMessage(models.Model):
    """A charger CALL the CSMS has not answered yet, stored before the charger got its answer
    (offline continuity). Replayed in id order, one at a time; deleted once the CSMS answers."""

    charge_box_id = models.CharField(max_length=255)
    unique_id = models.CharField(max_length=36)
    action = models.CharField(max_length=64)
    raw = models.TextField()
    received_at = models.DateTimeField()
    # For StartTransaction: the local id LinkRay gave the charger.
    local_transaction_id = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["charge_box_id", "id"], name="queued_by_charger")]

    def __str__(self) -> str:
        return f"{self.charge_box_id} #{self.pk} {self.action}"


class AuthorizationCacheEntry(models.Model):
    """What the CSMS last said about an idTag, for offline authorization."""

    id_tag = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=20)
    expiry_date = models.DateTimeField(null=True, blank=True)
    parent_id_tag = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id_tag"]
        verbose_name_plural = "authorization cache entries"

    def __str__(self) -> str:
        return f"{self.id_tag}: {self.status}"
