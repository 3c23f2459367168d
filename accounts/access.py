"""Turning a request into a Principal: a logged-in person or an API token. The adapter between
Django's users/tokens and the pure rights table in accounts.roles."""

from __future__ import annotations

import functools
import hmac

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from accounts.models import ApiToken, key_id_of
from accounts.roles import ALL_RIGHTS, RIGHTS, TOKEN_ROLES, Principal

BOOTSTRAP_TOKEN_NAME = "bootstrap"


def client_address(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is set by whoever connects, so trusting it would let a
    # client pick the address its failed logins are counted against.
    return (request.META.get("REMOTE_ADDR") or "")[:64]


def user_rights(user) -> frozenset[str]:
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return ALL_RIGHTS
    return frozenset(right for right in RIGHTS if user.has_perm(f"accounts.{right}"))


def principal_for_user(user, address: str = "") -> Principal | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return Principal("user", user.get_username(), user_rights(user), address, user_id=user.pk)


def principal_for_token(token: str, address: str = "") -> Principal | None:
    """The bootstrap LINKRAY_API_TOKEN (an administrator), or a named, unrevoked ApiToken."""
    if hmac.compare_digest(token.encode(), settings.LINKRAY_API_TOKEN.encode()):
        return Principal("token", BOOTSTRAP_TOKEN_NAME, ALL_RIGHTS, address)
    key_id = key_id_of(token)
    if key_id is None:
        return None
    api_token = ApiToken.objects.select_related("user").filter(key_id=key_id, revoked_at__isnull=True).first()
    if api_token is None or not api_token.matches(token):
        return None
    rights = TOKEN_ROLES.get(api_token.role, frozenset())
    if api_token.user is not None:
        rights = rights & user_rights(api_token.user)
    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now())
    return Principal("token", api_token.name, rights, address, token_id=api_token.pk)


def request_principal(request) -> Principal | None:
    """For pages (session only)."""
    return principal_for_user(request.user, client_address(request))


def right_required(right: str):
    """For page views: log in first, then 403 unless the person holds `right`. The view finds
    the Principal on `request.principal` (for the audit log)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            principal = request_principal(request)
            if principal is None or not principal.rights:
                # Logged in, but no role yet: say so plainly instead of a bare 403.
                return render(request, "accounts/no_role.html", status=403)
            if not principal.can(right):
                raise PermissionDenied(f"This needs the '{right}' right.")
            request.principal = principal
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def rights_context(request) -> dict:
    """Template context processor: `rights.operate`, `rights.administer`, ... for the person
    viewing the page, so templates show only the buttons that would be allowed."""
    user = getattr(request, "user", None)
    held = user_rights(user) if user is not None else frozenset()
    return {"rights": {right: right in held for right in RIGHTS}}
