"""Scale-out: Celery beat prunes the audit log (embedded: audit.retention.run_audit_pruning)."""

from celery import shared_task
from django.utils import timezone

from audit.retention import prune_expired


@shared_task(name="audit.prune")
def prune_audit_task() -> int:
    return prune_expired(timezone.now())
