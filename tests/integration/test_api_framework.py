"""The API's common rules: who may call, how bad input is answered, where the schema is."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client

pytestmark = pytest.mark.django_db


def bearer(token: str | None = None) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token or settings.LINKRAY_API_TOKEN}"}


def test_anonymous_callers_are_refused_before_any_lookup():
    client = Client()
    assert client.get("/api/chargers").status_code == 401
    response = client.get("/api/chargers/no-such-charger")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}
    assert client.post("/api/chargers/CP1/calls", {"action": "Reset"}, content_type="application/json").status_code == 401


def test_a_wrong_bearer_token_is_refused():
    response = Client().get("/api/chargers", **bearer("not-the-token"))
    assert response.status_code == 401


def test_the_bootstrap_token_reads_chargers():
    response = Client().get("/api/chargers", **bearer())
    assert response.status_code == 200
    assert response.json() == {"chargers": []}


def test_an_unknown_charger_is_404_with_an_error_message():
    response = Client().get("/api/chargers/CP-none", **bearer())
    assert response.status_code == 404
    assert response.json() == {"error": "unknown charger CP-none"}


def test_unknown_fields_and_wrong_types_are_400_with_a_message_per_field():
    response = Client().post(
        "/api/chargers/CP1/calls", {"action": "Reset", "paylod": {}, "timeout_s": "soon"}, content_type="application/json", **bearer()
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid input"
    assert body["fields"]["paylod"] == "unknown field"
    assert "timeout_s" in body["fields"]


def test_a_body_that_is_not_json_is_400():
    response = Client().post("/api/chargers/CP1/calls", "{not json", content_type="application/json", **bearer())
    assert response.status_code == 400
    assert "error" in response.json()


def test_a_session_write_without_the_csrf_token_is_refused():
    user = User.objects.create_user("op", password="a-long-passphrase-1")
    user.groups.add(Group.objects.get(name="operator"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/chargers/CP1/calls", {"action": "Reset"}, content_type="application/json")
    assert response.status_code == 403
    assert "X-CSRFToken" in response.json()["error"]  # says what to send
    assert client.get("/api/chargers").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/chargers/CP1/calls"), ("put", "/api/site"), ("put", "/api/site/setpoint"), ("delete", "/api/tokens/1")],
)
def test_an_anonymous_write_without_any_cookie_is_401_not_a_csrf_refusal(method, path):
    client = Client(enforce_csrf_checks=True)  # as a script or curl without credentials calls it
    response = getattr(client, method)(path, {}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/tokens", {"name": "ems\x00", "role": "setpoint"}, "name"),
        ("post", "/api/chargers/CP1/calls", {"action": "DataTransfer", "payload": {"vendorId": "a\x00"}}, "payload"),
        ("get", "/api/audit", {"actor": "\x00"}, "actor"),
    ],
)
def test_text_with_a_nul_character_is_400_for_that_field(method, path, body, field):
    # PostgreSQL (scale-out) refuses NUL in any text: it must never reach a query.
    client = Client()
    if method == "get":
        response = client.get(path, body, **bearer())
    else:
        response = getattr(client, method)(path, body, content_type="application/json", **bearer())
    assert response.status_code == 400, response.content
    assert response.json()["fields"][field] == "must not contain NUL characters", response.content


def test_a_value_the_database_refuses_is_400_not_500(monkeypatch):
    from django.db import DataError

    from gateway import selectors

    def refuse(charge_box_id):
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    monkeypatch.setattr(selectors, "charger_detail", refuse)
    response = Client().get("/api/chargers/CP%001", **bearer())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/chargers/a/b/c", "/api/chargers/a%2Fb"])
def test_a_path_under_api_that_names_no_operation_is_a_json_404(path):
    response = Client().get(path, **bearer())
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json") and "error" in response.json()


def test_a_viewer_reads_but_cannot_send_calls():
    user = User.objects.create_user("viewer", password="a-long-passphrase-1")
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    assert client.get("/api/chargers").status_code == 200
    response = client.post("/api/chargers/CP1/calls", {"action": "Reset"}, content_type="application/json")
    assert response.status_code == 403


def test_the_schema_needs_a_login_or_token_and_is_openapi_3():
    assert Client().get("/api/schema/").status_code == 401
    assert Client().get("/api/docs/").status_code == 401
    response = Client().get("/api/schema/", **bearer())
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/chargers/{charge_box_id}/calls" in schema["paths"]


def test_a_charger_id_with_an_escaped_slash_is_found():
    from gateway.models import Charger

    Charger.objects.create(charge_box_id="site/CP-7")
    response = Client().get("/api/chargers/site%2FCP-7", **bearer())
    assert response.status_code == 200
    assert response.json()["charge_box_id"] == "site/CP-7"
    # A call to it is routed to the same id (audited as such; not connected here).
    response = Client().post("/api/chargers/site%2FCP-7/calls", {"action": "Reset"}, content_type="application/json", **bearer())
    assert response.status_code == 404
    assert response.json()["error"].startswith("charger not connected")
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="charger.call.Reset", target="site/CP-7").exists()
