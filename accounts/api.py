"""JSON API for people and API tokens (administrators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from ninja import Field, Router, Status
from ninja.errors import HttpError

from accounts import services
from accounts.models import ApiToken
from accounts.roles import ADMINISTER
from linkray_site.api import REFUSALS, ErrorOut, StrictSchema, require

router = Router(tags=["people and tokens"])



class TokenOut(StrictSchema):
    id: int
    name: str
    role: str
    user: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenListOut(StrictSchema):
    tokens: list[TokenOut]


class TokenIn(StrictSchema):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["viewer", "operator", "administrator", "setpoint"]
    user: str | None = Field(default=None, max_length=150, description="the person whose rights bound the token")


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret: shown this once, never again")


class UserOut(StrictSchema):
    username: str
    role: str | None
    active: bool
    last_login: datetime | None


class UserListOut(StrictSchema):
    users: list[UserOut]


class UserIn(StrictSchema):
    username: str = Field(min_length=1, max_length=150)
    role: Literal["viewer", "operator", "administrator"]
    password: str = Field(min_length=1, max_length=4096)


class UserChangeIn(StrictSchema):
    role: Literal["viewer", "operator", "administrator"] | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=4096)


def _token_out(token: ApiToken) -> dict:
    return {
        "id": token.pk,
        "name": token.name,
        "role": token.role,
        "user": token.user.get_username() if token.user else None,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


def _user_out(user) -> dict:
    return {
        "username": user.get_username(),
        "role": services.user_role(user),
        "active": user.is_active,
        "last_login": user.last_login,
    }


def _field_error(error: services.AccountError):
    return Status(400, {"error": "invalid input", "fields": {error.field: error.message}})


@router.get("/tokens", response={200: TokenListOut, **REFUSALS}, summary="List API tokens (no secrets)")
async def token_list(request):
    require(request, ADMINISTER)

    def tokens():
        return [_token_out(token) for token in ApiToken.objects.select_related("user")]

    return {"tokens": await database_sync_to_async(tokens)()}


@router.post("/tokens", response={201: NewTokenOut, **REFUSALS}, summary="Create an API token")
async def token_create(request, body: TokenIn):
    principal = require(request, ADMINISTER)

    def create():
        user = None
        if body.user is not None:
            user = get_user_model().objects.filter(username=body.user).first()
            if user is None:
                raise services.AccountError("user", f"no user {body.user!r}")
        return services.create_token(principal, body.name, body.role, user)

    try:
        new = await database_sync_to_async(create)()
    except services.AccountError as error:
        return _field_error(error)
    return Status(201, {**_token_out(new.token), "token": new.secret})


@router.delete("/tokens/{token_id}", response={200: TokenOut, **REFUSALS, 404: ErrorOut}, summary="Revoke an API token")
async def token_revoke(request, token_id: int):
    principal = require(request, ADMINISTER)

    def revoke():
        token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
        return None if token is None else services.revoke_token(principal, token)

    token = await database_sync_to_async(revoke)()
    if token is None:
        raise HttpError(404, f"no token {token_id}")
    return _token_out(token)


@router.get("/users", response={200: UserListOut, **REFUSALS}, summary="List users and their roles")
async def user_list(request):
    require(request, ADMINISTER)

    def users():
        return [_user_out(user) for user in get_user_model().objects.order_by("username").prefetch_related("groups")]

    return {"users": await database_sync_to_async(users)()}


@router.post("/users", response={201: UserOut, **REFUSALS}, summary="Add a user with a role")
async def user_create(request, body: UserIn):
    principal = require(request, ADMINISTER)
    try:
        user = await database_sync_to_async(services.create_user)(principal, body.username, body.role, body.password)
    except services.AccountError as error:
        return _field_error(error)
    return Status(201, await database_sync_to_async(_user_out)(user))


def _find_user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise HttpError(404, f"no user {username!r}")
    return user


@router.put(
    "/users/{username}",
    response={200: UserOut, **REFUSALS, 404: ErrorOut},
    summary="Change a user's role, active flag or password",
)
async def user_update(request, username: str, body: UserChangeIn):
    principal = require(request, ADMINISTER)

    def update():
        user = _find_user(username)
        services.update_user(principal, user, role=body.role, active=body.active, password=body.password)
        return _user_out(user)

    try:
        return await database_sync_to_async(update)()
    except services.AccountError as error:
        return _field_error(error)


@router.delete("/users/{username}", response={204: None, **REFUSALS, 404: ErrorOut}, summary="Delete a user")
async def user_delete(request, username: str):
    principal = require(request, ADMINISTER)

    def delete():
        user = _find_user(username)
        if principal.user_id == user.pk:
            raise services.AccountError("username", "you cannot delete yourself")
        services.delete_user(principal, user)

    try:
        await database_sync_to_async(delete)()
    except services.AccountError as error:
        return _field_error(error)
    return Status(204, None)
