"""/healthz, /readyz and /metrics as a supervisor, a load balancer and Prometheus see them."""

from __future__ import annotations

import ipaddress

import pytest
from django.conf import settings
from django.test import AsyncClient, Client

from accounts.models import ApiToken
from linkray_site import observability
from linkray_site.metrics import record_over_limit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_readiness(monkeypatch):
    monkeypatch.setattr(observability, "_ready_cache", None)
    monkeypatch.setattr(observability, "_ready_lock", None)
    monkeypatch.setattr(settings, "LINKRAY_METRICS_ALLOWED_ADDRESSES", [])


async def test_healthz_answers_without_authentication():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_status_words_only_and_no_internal_detail(monkeypatch):
    monkeypatch.setattr(settings, "LINKRAY_CSMS_URL", "ws://127.0.0.1:9/never")
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "degraded",
        "checks": {"database": "ok", "channel_layer": "ok", "meter": "not_configured", "csms": "unreachable"},
    }
    assert "127.0.0.1" not in response.content.decode()


async def test_readyz_is_503_when_the_database_check_fails(monkeypatch):
    async def broken():
        raise RuntimeError("database is locked at /secret/path")

    monkeypatch.setattr(observability, "_check_database", broken)
    monkeypatch.setattr(settings, "LINKRAY_CSMS_URL", "")
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failing"
    assert "secret" not in response.content.decode()


async def test_readyz_answers_from_its_cache_between_checks(monkeypatch):
    calls = []

    async def counted():
        calls.append(1)
        return "ok"

    monkeypatch.setattr(observability, "_check_database", counted)
    monkeypatch.setattr(settings, "LINKRAY_CSMS_URL", "")
    client = AsyncClient()
    for _ in range(5):
        assert (await client.get("/readyz")).json()["status"] == "ready"
    assert calls == [1]


def test_metrics_refuse_anonymous_callers():
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_metrics_refuse_a_token_without_the_view_right():
    token, key_id, key_hash = ApiToken.new_secret()
    ApiToken.objects.create(name="setpoint-writer", role="setpoint", key_id=key_id, key_hash=key_hash)
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403


def test_metrics_with_a_view_token_expose_relay_meter_and_process_figures():
    record_over_limit(1.5)
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.LINKRAY_API_TOKEN}")
    assert response.status_code == 200
    text = response.content.decode()
    for name in (
        "linkray_chargers_connected ",
        'linkray_csms_legs{state="down"}',
        "linkray_relay_round_trip_seconds_bucket",
        "linkray_replay_queue_messages 0.0",
        "linkray_site_over_limit_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in text


def test_metrics_are_open_to_an_allowed_address(monkeypatch):
    monkeypatch.setattr(settings, "LINKRAY_METRICS_ALLOWED_ADDRESSES", [ipaddress.ip_network("127.0.0.0/8")])
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 401


def test_an_allowed_address_does_not_let_in_a_request_relayed_by_the_proxy(monkeypatch):
    monkeypatch.setattr(settings, "LINKRAY_METRICS_ALLOWED_ADDRESSES", [ipaddress.ip_network("127.0.0.1/32")])
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 401


def test_metrics_show_each_balanced_chargers_limit_and_reason():
    balancing_models = pytest.importorskip("balancing.models")
    if not hasattr(balancing_models, "ChargerBalancing"):
        pytest.skip("balancing has no per-charger model here")
    from gateway.models import Charger

    charger = Charger.objects.create(charge_box_id="CP-B", balancing_enabled=True)
    balancing_models.ChargerBalancing.objects.update_or_create(charger=charger, defaults={"limit_a": 10.0, "reason": "shared"})
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.LINKRAY_API_TOKEN}").content.decode()
    assert 'linkray_charger_limit_amperes{charge_box_id="CP-B",reason="shared"} 10.0' in text
