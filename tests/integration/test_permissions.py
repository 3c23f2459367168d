"""Every page view and API operation, for every kind of caller (anonymous, viewer, operator,
administrator, setpoint-only token), and every audited change checked field by field."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import CommandError, call_command, load_command_class
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken
from audit.models import AuditEntry
from balancing.models import SiteSettings
from gateway.models import Charger, GatewaySettings
from gateway.templatetags.site_time import format_site_time
from meters.models import Meter

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple-9"
ROLES = ["viewer", "operator", "administrator"]


@pytest.fixture(autouse=True)
def fresh_cache():
    """Login failures live in the cache: no test may inherit another's lock."""
    cache.clear()
    yield
    cache.clear()


def person(role: str | None, username: str | None = None) -> User:
    if username is None:
        username = f"{role or 'nobody'}-person"
        if User.objects.filter(username=username).exists():
            username = f"{username}-{User.objects.count()}"
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def logged_in(role: str | None) -> Client:
    client = Client()
    client.force_login(person(role))
    return client


def token_for(role: str) -> str:
    return services.create_token(services.COMMAND_LINE, f"{role}-token", role).secret


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def last(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).latest("id")


@pytest.fixture
def site():
    charger = Charger.objects.create(charge_box_id="CP-1", upstream_url="", balancing_enabled=False)
    meter = Meter.objects.create(name="grid", model_key="sdm630", transport="tcp", host="127.0.0.1")
    return {"charger": charger, "meter": meter}


# --- Pages ---------------------------------------------------------------------------------

READ_PAGES = ["/", "/chargers/CP-1/", "/chargers/CP-1/queue/", "/meters/", "/meters/{meter}/", "/audit/", "/audit/export.csv"]
ADMIN_PAGES = ["/settings/gateway/", "/meters/add/", "/meters/{meter}/edit/", "/accounts/tokens/"]


def url(template: str, site) -> str:
    return template.format(meter=site["meter"].pk)


@pytest.mark.parametrize("path", READ_PAGES + ADMIN_PAGES)
def test_anonymous_visitors_of_any_page_are_sent_to_the_login(site, path):
    response = Client().get(url(path, site))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", READ_PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_page(site, role, path):
    assert logged_in(role).get(url(path, site)).status_code == 200


@pytest.mark.parametrize("path", ADMIN_PAGES)
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_administration_pages_are_refused_below_administrator(site, role, path):
    assert logged_in(role).get(url(path, site)).status_code == 403


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_administrators_open_administration_pages(site, path):
    assert logged_in("administrator").get(url(path, site)).status_code == 200


@pytest.mark.parametrize("path", READ_PAGES)
def test_a_person_without_a_role_sees_the_no_role_page(site, path):
    response = logged_in(None).get(url(path, site))
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_buttons_show_only_what_the_role_may_do(site):
    viewer_page = logged_in("viewer").get("/chargers/CP-1/").content.decode()
    assert "Save settings" not in viewer_page and "Changing these needs the operator role." in viewer_page
    assert "/settings/gateway/" not in logged_in("operator").get("/").content.decode()
    admin_meter = logged_in("administrator").get(f"/meters/{site['meter'].pk}/").content.decode()
    assert f"/meters/{site['meter'].pk}/edit/" in admin_meter
    assert f"/meters/{site['meter'].pk}/edit/" not in logged_in("operator").get(f"/meters/{site['meter'].pk}/").content.decode()


def test_a_viewer_cannot_change_a_charger(site):
    response = logged_in("viewer").post("/chargers/CP-1/", {"balancing_enabled": "on"})
    assert response.status_code == 403
    site["charger"].refresh_from_db()
    assert site["charger"].balancing_enabled is False
    assert not AuditEntry.objects.filter(action="charger.settings.update").exists()


def test_an_operator_toggles_balancing_but_cannot_change_the_csms_url(site):
    client = Client(REMOTE_ADDR="10.0.0.7")
    client.force_login(person("operator", "olga"))
    response = client.post("/chargers/CP-1/", {"balancing_enabled": "on", "upstream_url": "ws://evil.example/ocpp"})
    assert response.status_code == 302
    site["charger"].refresh_from_db()
    assert site["charger"].balancing_enabled is True
    assert site["charger"].upstream_url == ""
    entry = last("charger.settings.update")
    assert (entry.actor, entry.actor_kind, entry.address) == ("olga", "user", "10.0.0.7")
    assert entry.target == "CP-1"
    assert entry.before == {"balancing_enabled": False}
    assert entry.after == {"balancing_enabled": True}


def test_an_administrator_changes_the_csms_url_and_it_is_audited(site):
    client = Client(REMOTE_ADDR="10.0.0.8")
    client.force_login(person("administrator", "ada"))
    response = client.post("/chargers/CP-1/", {"upstream_url": "ws://127.0.0.1:9/ocpp"})
    assert response.status_code == 302
    entry = last("charger.settings.update")
    assert (entry.actor, entry.address, entry.target) == ("ada", "10.0.0.8", "CP-1")
    assert entry.before == {"upstream_url": ""}
    assert entry.after == {"upstream_url": "ws://127.0.0.1:9/ocpp"}


def test_saving_unchanged_settings_writes_no_audit_entry(site):
    logged_in("operator").post("/chargers/CP-1/", {})
    assert not AuditEntry.objects.filter(action="charger.settings.update").exists()


def test_the_offline_policy_is_changed_by_administrators_only_and_audited(site):
    settings_row = GatewaySettings.load()
    assert logged_in("operator").post("/settings/gateway/", {"offline_authorization": "accept_all"}).status_code == 403
    client = Client(REMOTE_ADDR="10.0.0.9")
    client.force_login(person("administrator", "ada"))
    new_policy = next(value for value, _ in GatewaySettings.OfflineAuthorization.choices if value != settings_row.offline_authorization)
    response = client.post("/settings/gateway/", {"offline_authorization": new_policy, "accept_unknown_chargers": "on"})
    assert response.status_code == 302
    entry = last("gateway.settings.update")
    assert (entry.actor, entry.address, entry.target) == ("ada", "10.0.0.9", "gateway")
    assert entry.before["offline_authorization"] == settings_row.offline_authorization
    assert entry.after["offline_authorization"] == new_policy


def test_meters_are_added_edited_and_deleted_by_administrators_with_audit(site):
    assert logged_in("operator").post(f"/meters/{site['meter'].pk}/delete/").status_code == 403
    client = Client(REMOTE_ADDR="10.0.0.10")
    client.force_login(person("administrator", "ada"))
    form = {
        "name": "pv", "model_key": "sdm630", "role": "pv", "enabled": "on", "transport": "tcp", "host": "10.1.1.1",
        "port": "502", "serial_port": "", "baudrate": "9600", "parity": "N", "stopbits": "1", "unit_id": "2",
        "poll_interval_s": "1", "stale_after_s": "5", "timeout_s": "1",
    }
    assert client.post("/meters/add/", form).status_code == 302
    meter = Meter.objects.get(name="pv")
    created = last("meter.create")
    assert (created.actor, created.address, created.target) == ("ada", "10.0.0.10", f"meter:{meter.pk} pv")
    assert created.before is None and created.after["host"] == "10.1.1.1" and created.after["unit_id"] == 2

    assert client.post(f"/meters/{meter.pk}/edit/", {**form, "host": "10.1.1.2"}).status_code == 302
    updated = last("meter.update")
    assert updated.before == {"host": "10.1.1.1"} and updated.after == {"host": "10.1.1.2"}

    assert client.post(f"/meters/{meter.pk}/delete/").status_code == 302
    deleted = last("meter.delete")
    assert deleted.target == f"meter:{meter.pk} pv" and deleted.before["host"] == "10.1.1.2" and deleted.after is None


def test_the_token_page_creates_shows_the_secret_once_and_revokes(site):
    client = logged_in("administrator")
    response = client.post("/accounts/tokens/", {"name": "ems", "role": "setpoint"})
    assert response.status_code == 200
    secret = response.context["new_secret"]
    assert secret.startswith("lr_") and secret in response.content.decode()
    assert secret not in client.get("/accounts/tokens/").content.decode()
    token = ApiToken.objects.get(name="ems")
    assert last("token.create").after == {"name": "ems", "role": "setpoint", "user": None, "revoked": False}
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    revoked = last("token.revoke")
    assert (revoked.target, revoked.before, revoked.after) == ("token:ems", {"revoked": False}, {"revoked": True})
    assert Client().get("/api/chargers", **bearer(secret)).status_code == 401


# --- Audit page and export -----------------------------------------------------------------


def test_the_audit_page_filters_and_exports_the_same_entries(site):
    services.create_token(services.COMMAND_LINE, "ems", "setpoint")
    logged_in("operator").post("/chargers/CP-1/", {"balancing_enabled": "on"})
    client = logged_in("viewer")
    page = client.get("/audit/", {"action": "charger.", "actor": "operator-person"})
    assert [entry.action for entry in page.context["page"]] == ["charger.settings.update"]
    export = client.get("/audit/export.csv", {"action": "charger."})
    text = b"".join(export.streaming_content).decode()
    lines = text.strip().splitlines()
    assert lines[0] == "at,actor,actor_kind,address,action,target,before,after,outcome"
    assert len(lines) == 2 and "charger.settings.update" in lines[1] and "operator-person" in lines[1]
    assert client.get("/audit/", {"since": "yesterday"}).status_code == 400


def test_the_audit_and_token_pages_show_times_in_the_one_site_format(site, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    created = services.create_token(services.COMMAND_LINE, "ems", "setpoint").token
    ApiToken.objects.filter(pk=created.pk).update(created_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC))
    tokens_html = logged_in("administrator").get("/accounts/tokens/").content.decode()
    assert "2026-03-01 13:00:05" in tokens_html  # Berlin time, with seconds, as on every page
    entry = last("token.create")
    audit_html = logged_in("viewer").get("/audit/").content.decode()
    assert format_site_time(entry.at) in audit_html


def test_the_audit_and_token_tables_become_labelled_cards_on_a_phone(site):
    services.create_token(services.COMMAND_LINE, "ems", "setpoint")
    client = logged_in("administrator")
    audit_html = client.get("/audit/").content.decode()
    assert 'id="audit-entries" class="stack"' in audit_html
    for label in ("When", "Who", "From", "Action", "Target", "Before", "After", "Outcome"):
        assert f'data-label="{label}"' in audit_html
    tokens_html = client.get("/accounts/tokens/").content.decode()
    assert 'id="tokens" class="stack"' in tokens_html and 'data-label="Last used"' in tokens_html


def test_the_audit_log_cannot_be_changed_in_the_admin(site):
    services.create_token(services.COMMAND_LINE, "ems", "setpoint")
    entry = last("token.create")
    client = Client()
    client.force_login(User.objects.create_superuser("root", "", PASSWORD))
    assert client.get("/admin/audit/auditentry/").status_code == 200
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


# --- Admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("viewer", "/admin/gateway/charger/", 200),
        ("viewer", "/admin/gateway/charger/add/", 403),
        ("viewer", "/admin/auth/user/", 403),
        ("viewer", "/admin/accounts/apitoken/", 403),
        ("operator", "/admin/auth/user/", 403),
        ("operator", "/admin/meters/meter/add/", 403),
        ("administrator", "/admin/auth/user/", 200),
        ("administrator", "/admin/accounts/apitoken/add/", 200),
        ("administrator", "/admin/meters/meter/add/", 200),
        # Balancing: every role reads the site limits (as on /balancing/site/), operators change them.
        ("viewer", "/admin/balancing/sitesettings/", 200),
        ("viewer", "/admin/balancing/chargerbalancing/", 200),
        ("viewer", "/admin/balancing/setpoint/", 200),
        ("viewer", "/admin/balancing/sitesettings/add/", 403),
        ("operator", "/admin/balancing/sitesettings/add/", 200),
        ("operator", "/admin/balancing/setpoint/add/", 403),
    ],
)
def test_the_admin_applies_the_same_rights_as_the_pages(site, role, path, status):
    assert logged_in(role).get(path).status_code == status


SITE_FORM = {"grid_limit_a": "63", "grid_limit_kw": "", "margin_a": "2", "failsafe_current_a": "6", "nominal_voltage_v": "230", "control_period_s": "1"}


def test_an_operator_changes_the_site_limits_in_the_admin_as_on_the_page_and_a_viewer_cannot(site):
    SiteSettings.objects.create(pk=1, grid_limit_a=40)
    refused = logged_in("viewer").post("/admin/balancing/sitesettings/1/change/", SITE_FORM)
    assert refused.status_code == 403 and SiteSettings.objects.get().grid_limit_a == 40
    response = logged_in("operator").post("/admin/balancing/sitesettings/1/change/", SITE_FORM)
    assert response.status_code == 302
    assert SiteSettings.objects.get().grid_limit_a == 63
    entry = last("site.update")
    assert (entry.actor, entry.before, entry.after, entry.outcome) == ("operator-person", {"grid_limit_a": 40.0, "margin_a": 0.0}, {"grid_limit_a": 63.0, "margin_a": 2.0}, "admin")


def test_an_operator_changes_balancing_in_the_admin_but_not_the_csms_url(site):
    client = logged_in("operator")
    response = client.post(
        f"/admin/gateway/charger/{site['charger'].pk}/change/",
        {"balancing_enabled": "on", "upstream_url": "ws://evil.example/ocpp"},
    )
    assert response.status_code == 302
    site["charger"].refresh_from_db()
    assert site["charger"].balancing_enabled is True and site["charger"].upstream_url == ""
    entry = last("charger.update")
    assert (entry.target, entry.before, entry.after) == ("CP-1", {"balancing_enabled": False}, {"balancing_enabled": True})


def test_the_admin_shows_a_new_tokens_secret_once(site):
    client = logged_in("administrator")
    response = client.post("/admin/accounts/apitoken/add/", {"name": "ems", "role": "setpoint"}, follow=True)
    text = response.content.decode()
    token = ApiToken.objects.get(name="ems")
    assert f"lr_{token.key_id}_" in text
    detail = client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert f"lr_{token.key_id}_" not in detail and token.key_hash not in detail
    assert last("token.create").actor == "administrator-person"


def test_staff_without_a_role_see_nothing_in_the_admin():
    assert logged_in(None).get("/admin/gateway/charger/").status_code == 403


# --- API -----------------------------------------------------------------------------------

# (method, path, body, right needed): every operation on this branch.
OPERATIONS = [
    ("get", "/api/chargers", None, "view"),
    ("get", "/api/chargers/CP-1", None, "view"),
    ("post", "/api/chargers/CP-1/calls", {"action": "Heartbeat"}, "operate"),
    ("get", "/api/audit", None, "view"),
    ("get", "/api/tokens", None, "administer"),
    ("post", "/api/tokens", {"name": "new", "role": "viewer"}, "administer"),
    ("delete", "/api/tokens/999999", None, "administer"),
    ("get", "/api/users", None, "administer"),
    ("post", "/api/users", {"username": "newbie", "role": "viewer", "password": PASSWORD}, "administer"),
    ("put", "/api/users/nobody-there", {"active": False}, "administer"),
    ("delete", "/api/users/nobody-there", None, "administer"),
    ("get", "/api/schema/", None, "view"),
]
ALLOWED = {
    "viewer": {"view"},
    "operator": {"view", "operate"},
    "administrator": {"view", "operate", "administer"},
    "setpoint": set(),
}


def call(client: Client, method: str, path: str, body, **headers):
    if body is None:
        return getattr(client, method)(path, **headers)
    return getattr(client, method)(path, body, content_type="application/json", **headers)


@pytest.mark.parametrize(("method", "path", "body", "right"), OPERATIONS)
def test_anonymous_api_callers_get_401(site, method, path, body, right):
    assert call(Client(), method, path, body).status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "right"), OPERATIONS)
@pytest.mark.parametrize("role", ["viewer", "operator", "administrator", "setpoint"])
def test_each_token_role_gets_exactly_its_rights(site, role, method, path, body, right):
    response = call(Client(), method, path, body, **bearer(token_for(role)))
    if right in ALLOWED[role]:
        assert response.status_code not in (401, 403), response.content
    else:
        assert response.status_code == 403, response.content


@pytest.mark.parametrize(("method", "path", "body", "right"), OPERATIONS)
@pytest.mark.parametrize("role", ROLES)
def test_each_person_gets_exactly_the_rights_of_their_role(site, role, method, path, body, right):
    response = call(logged_in(role), method, path, body)
    if right in ALLOWED[role]:
        assert response.status_code not in (401, 403), response.content
    else:
        assert response.status_code == 403, response.content


def test_a_setpoint_token_is_refused_everything_but_setpoints(site):
    """It holds WRITE_SETPOINT only; the setpoint endpoint itself comes with the balancing work."""
    token = token_for("setpoint")
    for method, path, body, _ in OPERATIONS:
        assert call(Client(), method, path, body, **bearer(token)).status_code == 403, path


def test_api_tokens_are_created_listed_and_revoked_with_audit(site):
    client = Client(REMOTE_ADDR="10.0.0.20")
    ada = person("administrator", "ada")
    created = client.post(
        "/api/tokens", {"name": "ems", "role": "setpoint", "user": "ada"}, content_type="application/json",
        **bearer(settings.LINKRAY_API_TOKEN),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("lr_") and body["name"] == "ems" and body["user"] == "ada"
    listed = client.get("/api/tokens", **bearer(settings.LINKRAY_API_TOKEN)).json()["tokens"]
    assert [token["name"] for token in listed] == ["ems"] and "token" not in listed[0]
    entry = last("token.create")
    assert (entry.actor, entry.actor_kind, entry.address, entry.target) == ("token:bootstrap", "token", "10.0.0.20", "token:ems")
    assert entry.before is None
    assert entry.after == {"name": "ems", "role": "setpoint", "user": "ada", "revoked": False}
    stored = ApiToken.objects.get(name="ems")
    assert body["token"] not in (stored.key_hash, stored.key_id) and stored.user == ada

    assert client.delete(f"/api/tokens/{body['id']}", **bearer(settings.LINKRAY_API_TOKEN)).json()["revoked_at"]
    revoked = last("token.revoke")
    assert (revoked.before, revoked.after) == ({"revoked": False}, {"revoked": True})
    assert client.get("/api/audit", **bearer(body["token"])).status_code == 401


def test_bad_token_input_gets_a_message_per_field(site):
    admin = bearer(settings.LINKRAY_API_TOKEN)
    wrong_role = Client().post("/api/tokens", {"name": "x", "role": "god"}, content_type="application/json", **admin)
    assert wrong_role.status_code == 400 and "role" in wrong_role.json()["fields"]
    unknown_user = Client().post("/api/tokens", {"name": "x", "role": "viewer", "user": "ghost"}, content_type="application/json", **admin)
    assert unknown_user.status_code == 400 and unknown_user.json()["fields"] == {"user": "no user 'ghost'"}


def test_users_are_managed_through_the_api_with_audit(site):
    admin = bearer(settings.LINKRAY_API_TOKEN)
    client = Client(REMOTE_ADDR="10.0.0.30")
    weak = client.post("/api/users", {"username": "vera", "role": "viewer", "password": "12345678"}, content_type="application/json", **admin)
    assert weak.status_code == 400 and "password" in weak.json()["fields"]
    created = client.post("/api/users", {"username": "vera", "role": "viewer", "password": PASSWORD}, content_type="application/json", **admin)
    assert created.status_code == 201 and created.json()["role"] == "viewer"
    entry = last("user.create")
    assert (entry.actor, entry.address, entry.target, entry.before) == ("token:bootstrap", "10.0.0.30", "user:vera", None)
    assert entry.after == {"username": "vera", "role": "viewer", "active": True}

    changed = client.put("/api/users/vera", {"role": "operator", "password": PASSWORD + "x"}, content_type="application/json", **admin)
    assert changed.status_code == 200 and changed.json()["role"] == "operator"
    update = last("user.update")
    assert update.before == {"role": "viewer", "password": "(old)"}
    assert update.after == {"role": "operator", "password": "(changed)"}
    assert User.objects.get(username="vera").check_password(PASSWORD + "x")
    assert [user["username"] for user in client.get("/api/users", **admin).json()["users"]] == ["vera"]

    assert client.delete("/api/users/vera", **admin).status_code == 204
    deleted = last("user.delete")
    assert deleted.before == {"username": "vera", "role": "operator", "active": True} and deleted.after is None
    assert client.delete("/api/users/vera", **admin).status_code == 404


def test_the_audit_api_filters_and_pages(site):
    for name in ("a", "b", "c"):
        services.create_token(services.COMMAND_LINE, name, "viewer")
    client = Client()
    response = client.get("/api/audit", {"action": "token.create", "limit": 2}, **bearer(settings.LINKRAY_API_TOKEN))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and [entry["target"] for entry in body["entries"]] == ["token:c", "token:b"]
    rest = client.get("/api/audit", {"action": "token.create", "limit": 2, "offset": 2}, **bearer(settings.LINKRAY_API_TOKEN)).json()
    assert [entry["target"] for entry in rest["entries"]] == ["token:a"]
    assert rest["entries"][0]["actor"] == "manage.py"
    today = timezone.localdate().isoformat()
    whole_day = client.get("/api/audit", {"action": "token.create", "since": today, "until": today}, **bearer(settings.LINKRAY_API_TOKEN))
    assert whole_day.json()["count"] == 3
    midnight = client.get("/api/audit", {"action": "token.create", "until": f"{today}T00:00:00"}, **bearer(settings.LINKRAY_API_TOKEN))
    assert midnight.json()["count"] == 0
    bad = client.get("/api/audit", {"limit": 0, "since": "soon"}, **bearer(settings.LINKRAY_API_TOKEN))
    assert bad.status_code == 400 and {"limit", "since"} <= set(bad.json()["fields"])


# --- People: adduser, login, password ------------------------------------------------------


def test_adduser_generates_a_password_and_is_audited():
    out = io.StringIO()
    call_command("adduser", "otto", "--role", "operator", stdout=out)
    password = out.getvalue().split("Password (shown once): ")[1].strip()
    user = User.objects.get(username="otto")
    assert user.check_password(password) and user.groups.filter(name="operator").exists()
    entry = last("user.create")
    assert (entry.actor, entry.target, entry.after) == ("manage.py", "user:otto", {"username": "otto", "role": "operator", "active": True})


def test_adduser_refuses_a_user_name_with_spaces_or_markup_and_adds_nobody():
    with pytest.raises(CommandError, match="username: a user name may hold only letters"):
        call_command("adduser", "a b/<x>", "--role", "viewer", stdout=io.StringIO())
    assert not User.objects.filter(username="a b/<x>").exists()
    response = Client().post(
        "/api/users",
        {"username": "x y", "role": "viewer", "password": PASSWORD},
        content_type="application/json",
        **bearer(settings.LINKRAY_API_TOKEN),
    )
    assert response.status_code == 400 and set(response.json()["fields"]) == {"username"}


def test_adduser_help_explains_the_roles_the_password_and_gives_examples():
    parser = load_command_class("accounts", "adduser").create_parser("manage.py", "adduser")
    text = parser.format_help()
    for words in ("viewer ", "operator ", "administrator ", "--password-stdin", "prints it once", "examples:"):
        assert words in text
    assert "  viewer         reads everything" in text  # the roles table keeps its layout


def test_adduser_reads_the_password_from_stdin_and_validates_it(monkeypatch):
    from django.core.management.base import CommandError

    monkeypatch.setattr("sys.stdin", io.StringIO("12345678901\n"))
    with pytest.raises(CommandError, match="password"):
        call_command("adduser", "otto", "--role", "viewer", "--password-stdin", stdout=io.StringIO())
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    call_command("adduser", "otto", "--role", "viewer", "--password-stdin", stdout=io.StringIO())
    assert User.objects.get(username="otto").check_password(PASSWORD)


def test_logins_are_audited_with_the_username_tried():
    person("viewer", "vera")
    client = Client(REMOTE_ADDR="10.0.0.40")
    client.post("/accounts/login/", {"username": "vera", "password": "wrong"})
    failed = last("login.failed")
    assert (failed.actor, failed.address, failed.target) == ("anonymous", "10.0.0.40", "user:vera")
    client.post("/accounts/login/", {"username": "vera", "password": PASSWORD})
    succeeded = last("login.succeeded")
    assert (succeeded.actor, succeeded.address, succeeded.target) == ("vera", "10.0.0.40", "user:vera")


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/"])
def test_five_wrong_passwords_lock_the_address_with_429(login_path, caplog):
    person("administrator", "ada")
    client = Client(REMOTE_ADDR="10.0.0.50")
    for _ in range(5):
        assert client.post(login_path, {"username": "ada", "password": "wrong"}).status_code == 200
    with caplog.at_level(logging.WARNING, logger="accounts.login"):
        locked = client.post(login_path, {"username": "ada", "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) >= 1
    assert "login_throttled address=10.0.0.50" in caplog.text
    assert "_auth_user_id" not in client.session
    # Another address is not affected.
    assert Client(REMOTE_ADDR="10.0.0.51").post(login_path, {"username": "ada", "password": PASSWORD}).status_code == 302


def test_the_lock_lifts_after_its_delay(monkeypatch):
    person("administrator", "ada")
    clock = [1_000_000.0]
    monkeypatch.setattr("accounts.login.time.time", lambda: clock[0])
    client = Client(REMOTE_ADDR="10.0.0.60")
    for _ in range(5):
        client.post("/accounts/login/", {"username": "ada", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}).status_code == 429
    clock[0] += settings.LINKRAY_LOGIN_DELAY_S + 0.5
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}).status_code == 302


def test_changing_the_password_logs_out_other_sessions_and_keeps_this_one():
    user = person("viewer", "vera")
    phone, laptop = Client(), Client()
    assert phone.login(username="vera", password=PASSWORD) and laptop.login(username="vera", password=PASSWORD)
    new_password = PASSWORD + "-new"
    response = laptop.post(
        "/accounts/password/", {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password}
    )
    assert response.status_code == 302
    assert laptop.get("/").status_code == 200
    assert phone.get("/").status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    entry = last("user.password_change")
    assert (entry.actor, entry.target, entry.after) == ("vera", "user:vera", {"password": "(changed)"})


def test_changing_the_own_password_in_the_admin_is_audited_like_on_the_page():
    person("operator", "otto")
    client = Client()
    assert client.login(username="otto", password=PASSWORD)
    new_password = PASSWORD + "-admin"
    response = client.post(
        "/admin/password_change/", {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password}
    )
    assert response.status_code == 302
    assert User.objects.get(username="otto").check_password(new_password)
    entry = last("user.password_change")
    assert (entry.actor, entry.target, entry.after) == ("otto", "user:otto", {"password": "(changed)"})


def test_passwords_like_the_username_or_all_digits_are_refused():
    person("viewer", "veronika")
    client = Client()
    client.login(username="veronika", password=PASSWORD)
    for weak in ("veronika1", "83749201734"):
        response = client.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak})
        assert response.status_code == 200 and response.context["form"].errors


def test_cookies_are_secure_when_served_over_tls():
    person("viewer", "vera")
    response = Client().post("/accounts/login/", {"username": "vera", "password": PASSWORD}, secure=True)
    assert response.cookies["sessionid"]["secure"] is True
    assert response.cookies["csrftoken"]["secure"] is True
    plain = Client().post("/accounts/login/", {"username": "vera", "password": PASSWORD})
    assert not plain.cookies["sessionid"]["secure"]


def test_retention_prunes_only_old_entries(settings):
    from datetime import timedelta

    from django.utils import timezone

    from audit.retention import prune_expired

    settings.LINKRAY_AUDIT_RETENTION_DAYS = 30
    services.create_token(services.COMMAND_LINE, "ems", "setpoint")
    assert prune_expired(timezone.now()) == 0
    kept = AuditEntry.objects.count()
    assert kept >= 1
    assert prune_expired(timezone.now() + timedelta(days=31)) == kept
    assert not AuditEntry.objects.exists()


def test_retention_runs_embedded_and_on_celery_beat(settings):
    assert "audit.retention.run_audit_pruning" in settings.LINKRAY_EMBEDDED_TASKS
    assert settings.CELERY_BEAT_SCHEDULE["audit-prune"]["task"] == "audit.prune"
    from audit.tasks import prune_audit_task

    assert prune_audit_task.name == "audit.prune"


def test_a_password_set_in_the_admin_is_audited_without_the_password():
    person("viewer", "vera")
    client = logged_in("administrator")
    vera = User.objects.get(username="vera")
    new_password = PASSWORD + "-admin"
    response = client.post(
        f"/admin/auth/user/{vera.pk}/password/",
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert response.status_code == 302
    entry = last("user.update")
    assert (entry.target, entry.before, entry.after) == ("user:vera", {"password": "(old)"}, {"password": "(changed)"})
    assert new_password not in str(entry.before) + str(entry.after)


def test_every_actor_kind_fits_its_column():
    """SQLite does not enforce lengths; PostgreSQL refused 'anonymous' in a varchar(8)."""
    column = AuditEntry._meta.get_field("actor_kind").max_length
    assert all(len(kind) <= column for kind in ("user", "token", "anonymous"))


def test_a_role_given_in_the_admin_is_audited_as_the_groups_before_and_after():
    vera = person("viewer", "vera")
    client = logged_in("administrator")
    form = {
        "username": "vera", "is_active": "on", "is_staff": "on", "groups": [str(Group.objects.get(name="operator").pk)],
        "date_joined_0": "2026-12-01", "date_joined_1": "10:00:00", "initial-date_joined_0": "2026-12-01",
        "initial-date_joined_1": "10:00:00",
    }
    response = client.post(f"/admin/auth/user/{vera.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    entry = AuditEntry.objects.filter(action="user.update", before__has_key="groups").latest("id")
    assert (entry.target, entry.before["groups"], entry.after["groups"]) == ("user:vera", ["viewer"], ["operator"])
