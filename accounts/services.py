"""Writing people and API tokens. Each write is audited with before/after; the API, the pages,
the admin and `manage.py adduser` all go through here."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.roles import ROLES, TOKEN_ROLES, Principal
from audit.services import changed, record

# The actor of changes made from the command line.
COMMAND_LINE = Principal("user", "manage.py", frozenset(), "")


class AccountError(ValueError):
    """Bad input for a person or a token: `field` names what to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


def user_role(user) -> str | None:
    if user.is_superuser:
        return "administrator"
    names = set(user.groups.values_list("name", flat=True))
    for role in ("administrator", "operator", "viewer"):
        if role in names:
            return role
    return None


def user_fields(user) -> dict:
    return {"username": user.get_username(), "role": user_role(user), "active": user.is_active}


def token_fields(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "role": token.role,
        "user": token.user.get_username() if token.user else None,
        "revoked": token.revoked_at is not None,
    }


def _check_role(role: str, roles) -> None:
    if role not in roles:
        raise AccountError("role", f"unknown role {role!r}: expected one of {', '.join(roles)}")


def _check_password(password: str, user) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        messages = getattr(error, "messages", [str(error)])
        raise AccountError("password", " ".join(messages)) from None


def _set_role(user, role: str) -> None:
    user.groups.set([Group.objects.get(name=role)])
    # Every role may open the admin; what it shows is decided by the same rights as the pages.
    user.is_staff = True


@transaction.atomic
def create_user(principal: Principal, username: str, role: str, password: str) -> object:
    User = get_user_model()
    _check_role(role, ROLES)
    username = username.strip()
    if not username or len(username) > 150:
        raise AccountError("username", "a user name of 1 to 150 characters is required")
    try:
        User.username_validator(username)
    except ValidationError:
        raise AccountError("username", "a user name may hold only letters, digits and @ . + - _") from None
    if User.objects.filter(username=username).exists():
        raise AccountError("username", f"user {username!r} already exists")
    user = User(username=username)
    _check_password(password, user)
    user.set_password(password)
    user.is_staff = True
    user.save()
    _set_role(user, role)
    user.save()
    record(principal, "user.create", f"user:{username}", after=user_fields(user))
    return user


@transaction.atomic
def update_user(principal: Principal, user, *, role: str | None = None, active: bool | None = None, password: str | None = None):
    before = user_fields(user)
    if role is not None:
        _check_role(role, ROLES)
        if user.is_superuser and role != "administrator":
            raise AccountError("role", "a superuser is always an administrator; change it in the admin")
        _set_role(user, role)
    if active is not None:
        user.is_active = active
    if password is not None:
        _check_password(password, user)
        user.set_password(password)
    user.save()
    after = user_fields(user)
    if password is not None:
        before["password"], after["password"] = "(old)", "(changed)"
    before, after = changed(before, after)
    if after is not None:
        record(principal, "user.update", f"user:{user.get_username()}", before=before, after=after)
    return user


@transaction.atomic
def delete_user(principal: Principal, user) -> None:
    before = user_fields(user)
    user.delete()
    record(principal, "user.delete", f"user:{before['username']}", before=before)


@transaction.atomic
def create_token(principal: Principal, name: str, role: str, user=None) -> NewToken:
    _check_role(role, TOKEN_ROLES)
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("name", "a name of 1 to 100 characters is required")
    if name == "bootstrap":
        raise AccountError("name", "'bootstrap' names LINKRAY_API_TOKEN")
    if ApiToken.objects.filter(name=name).exists():
        raise AccountError("name", f"a token named {name!r} exists (revoked tokens keep their name)")
    secret, key_id, key_hash = ApiToken.new_secret()
    token = ApiToken.objects.create(name=name, role=role, user=user, key_id=key_id, key_hash=key_hash)
    record(principal, "token.create", f"token:{name}", after=token_fields(token))
    return NewToken(token, secret)


@transaction.atomic
def revoke_token(principal: Principal, token: ApiToken) -> ApiToken:
    if token.revoked_at is not None:
        return token
    before = token_fields(token)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    before, after = changed(before, token_fields(token))
    record(principal, "token.revoke", f"token:{token.name}", before=before, after=after)
    return token
