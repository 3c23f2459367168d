from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

from accounts.roles import RIGHTS, TOKEN_ROLES

TOKEN_PREFIX = "lr_"


class Rights(models.Model):
    """Holds LinkRay's rights as Django permissions (accounts.<right>); no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = list(RIGHTS.items())


class ApiToken(models.Model):
    """A bearer token for an integration or a person's script. The secret is shown once, at
    creation; only its SHA-256 is kept (the secret is 256 random bits, so a slow hash buys
    nothing). Revoked tokens stay for the audit trail."""

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=16, choices=[(role, role) for role in TOKEN_ROLES])
    # A person's token can never do more than the person may.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def new_secret() -> tuple[str, str, str]:
        """(token, key_id, key_hash): the token is `lr_<key_id>_<secret>`."""
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        return token, key_id, hash_token(token)

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_token(token))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, _, secret = token[len(TOKEN_PREFIX):].partition("_")
    return key_id if key_id and secret else None
