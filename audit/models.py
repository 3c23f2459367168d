from __future__ import annotations

from django.db import models


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("the audit log is append-only")

    def delete(self):
        raise PermissionError("the audit log is append-only; it is pruned by retention only")


class AuditEntry(models.Model):
    """One change of configuration or state, one action sent to a charger, or one login.

    Append-only for the application: saving an existing entry or deleting one raises; only
    `audit.services.prune` removes entries older than the retention."""

    at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150, db_index=True)  # username, or token:<name>
    actor_kind = models.CharField(max_length=16)  # user | token | anonymous
    address = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, db_index=True)  # e.g. site.update, charger.reset, login.failed
    target = models.CharField(max_length=255, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=255, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("the audit log is append-only; it is pruned by retention only")
