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

from channels.db import database_sync_to_async
from django.http import HttpRequest, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.security import APIKeyCookie, HttpBearer
from pydantic import ConfigDict

from accounts.access import client_address, principal_for_token, principal_for_user
from accounts.roles import VIEW_SITE, Principal


class StrictSchema(Schema):
    """Request bodies refuse fields they do not know: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid")


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
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload", "query", "path")]
        # pydantic names the union branch or model in the path ("since.datetime"); the field is
        # what people read
        name = location[0] if location else "body"
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
