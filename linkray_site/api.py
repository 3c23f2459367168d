"""The JSON API: one django-ninja instance for every app's router.

Why django-ninja (docs/api.md): async-native like the rest of LinkRay (send_call is a
coroutine), pydantic validation with an OpenAPI 3 schema generated from the same type hints,
and a small surface. Each app adds its operations on its own `Router`; this module owns
authentication, rights and the error shape that scripts rely on: `{"error": "..."}`, plus
`"fields": {name: message}` for invalid input.

Authentication: `Authorization: Bearer <token>` (the bootstrap LINKRAY_API_TOKEN or a named API
token) or a logged-in session; a session's writes need the CSRF token. `request.auth` is then
an `accounts.roles.Principal`; operations call `require(request, right)` before any lookup.
"""

from __future__ import annotations

import functools
import logging

from channels.db import database_sync_to_async
from django.db import DataError
from django.http import HttpRequest, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.security import APIKeyCookie, HttpBearer
from pydantic import ConfigDict, ValidationInfo, field_validator

from accounts.access import client_address, principal_for_token, principal_for_user
from accounts.roles import VIEW_SITE, Principal


def _free_of_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_free_of_nul(key) and _free_of_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_free_of_nul(item) for item in value)
    return True


class StrictSchema(Schema):
    """Request bodies refuse fields they do not know: a typo must not pass silently. No input
    text may hold a NUL character: PostgreSQL (scale-out) refuses it in any query or column."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value, info: ValidationInfo):
        if info.context and "response_status" in info.context:
            return value  # an answer LinkRay built, not input
        if not _free_of_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


logger = logging.getLogger(__name__)


class ErrorOut(Schema):
    error: str


class FieldErrorsOut(Schema):
    error: str
    fields: dict[str, str]


# Every operation may answer these; declare them with `response={200: ..., **REFUSALS}` so the
# schema says so (the fuzzing test checks that every status is declared).
REFUSALS: dict[int, type[Schema]] = {400: FieldErrorsOut, 401: ErrorOut, 403: ErrorOut}


class BearerToken(HttpBearer):
    async def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        return await database_sync_to_async(principal_for_token)(token.strip(), client_address(request))


class SessionLogin(APIKeyCookie):
    """A logged-in person; APIKeyCookie checks the CSRF token on unsafe methods."""

    param_name = "sessionid"

    def _get_key(self, request: HttpRequest) -> str | None:
        if not request.COOKIES.get(self.param_name):
            return None  # no session at all: unauthenticated (401), not a failed CSRF check (403)
        try:
            return super()._get_key(request)
        except HttpError as error:  # ninja's "CSRF check Failed"
            raise HttpError(
                403, "CSRF check failed: a write with a session cookie needs the X-CSRFToken header (the csrftoken cookie's value)"
            ) from error

    async def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = await request.auser()
        return await database_sync_to_async(principal_for_user)(user, client_address(request))


def _docs_login_required(view):
    """The schema and its docs page are for people and clients that may read the API."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            principal = principal_for_token(header[7:].strip(), client_address(request))
        else:
            principal = principal_for_user(request.user, client_address(request))
        if principal is None:
            return JsonResponse({"error": "authentication required"}, status=401)
        if not principal.can(VIEW_SITE):
            # A setpoint-only token writes setpoints and reads nothing, not even the schema.
            return JsonResponse({"error": "permission denied: this needs the 'view_site' right"}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


api = NinjaAPI(
    title="LinkRay API",
    version="1",
    description="Chargers, site limits, meters, balancing, setpoints and the audit log of one LinkRay site.",
    auth=[BearerToken(), SessionLogin()],
    urls_namespace="api",
    openapi_url="/schema/",
    docs_url="/docs/",
    docs_decorator=_docs_login_required,
)


def api_not_found(request: HttpRequest) -> JsonResponse:
    """Any path under /api/ that names no operation: the API's error shape, not an HTML page."""
    return JsonResponse({"error": f"no API operation at {request.path[:200]}"}, status=404)


def require(request: HttpRequest, right: str) -> Principal:
    principal: Principal = request.auth
    if not principal.can(right):
        raise HttpError(403, f"permission denied: this needs the '{right}' right")
    return principal


def require_view(request: HttpRequest) -> Principal:
    return require(request, VIEW_SITE)


@api.exception_handler(ValidationError)
def _invalid_input(request, exc: ValidationError):
    fields: dict[str, str] = {}
    for error in exc.errors:
        # ninja's location: (source, field, ...) or (source, parameter, field, ...), and our
        # operations name their schema parameter after its source (`body: XIn`,
        # `query: Query[XQuery]`). Only the field is what people read (pydantic may go on with
        # a union branch, "since.datetime"); a field may itself be called "payload".
        source, *within = [str(part) for part in error.get("loc", ())] or ["body"]
        if len(within) > 1 and within[0] == source:
            within = within[1:]
        name = within[0] if within else "body"
        fields.setdefault(name, _message(error))
    return api.create_response(request, {"error": "invalid input", "fields": fields}, status=400)


def _message(error: dict) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "missing":
        return "this field is required"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return api.create_response(request, {"error": "authentication required"}, status=401)


@api.exception_handler(AuthorizationError)
def _forbidden(request, exc):
    return api.create_response(request, {"error": str(exc) or "permission denied"}, status=403)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if exc.status_code == 400:
        # e.g. a body that is not JSON: the same shape as any other invalid input
        return api.create_response(request, {"error": "invalid input", "fields": {"body": str(exc)}}, status=400)
    return api.create_response(request, {"error": str(exc)}, status=exc.status_code)


@api.exception_handler(DataError)
def _refused_by_the_database(request, exc: DataError):
    # What the schema let through but the database cannot store or compare (a NUL in a path
    # value, text longer than its column on PostgreSQL): the caller's input, so 400, not 500.
    logger.warning("api_input_refused_by_database path=%s error=%s", request.path[:200], str(exc).splitlines()[0][:200])
    return api.create_response(
        request,
        {"error": "invalid input", "fields": {"body": "a value the database cannot store (too long, or a NUL character)"}},
        status=400,
    )


def _register_routers() -> None:
    from accounts.api import router as accounts_router
    from audit.api import router as audit_router
    from balancing.api import router as balancing_router
    from gateway.api import router as gateway_router
    from meters.api import router as meters_router

    api.add_router("", gateway_router)
    api.add_router("", accounts_router)
    api.add_router("", audit_router)
    api.add_router("", balancing_router)
    api.add_router("", meters_router)


_register_routers()
