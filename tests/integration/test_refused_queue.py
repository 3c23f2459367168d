"""A charger the CSMS refused keeps its queue, and the operator sees why it is stuck."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.models import Charger, QueuedMessage

pytestmark = pytest.mark.django_db


def test_the_queue_page_and_the_api_say_the_csms_refused_the_charger(admin_client):
    Charger.objects.create(charge_box_id="CP-PW", state={"charge_box_id": "CP-PW", "csms_refused": "HTTP 401"})
    QueuedMessage.objects.create(
        charge_box_id="CP-PW", unique_id="u1", action="StatusNotification", raw="[2,\"u1\",\"StatusNotification\",{}]",
        received_at=datetime.now(UTC),
    )
    page = admin_client.get("/chargers/CP-PW/queue/").content.decode()
    assert "The CSMS refuses this charger (HTTP 401)" in page
    assert "1 message waiting for replay" in page
    detail = admin_client.get("/api/chargers/CP-PW").json()
    assert detail["csms_refused"] == "HTTP 401"


def test_a_charger_the_csms_accepts_shows_no_refusal(admin_client):
    Charger.objects.create(charge_box_id="CP-OK")
    assert "refuses" not in admin_client.get("/chargers/CP-OK/queue/").content.decode()
    assert admin_client.get("/api/chargers/CP-OK").json()["csms_refused"] == ""
