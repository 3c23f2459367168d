"""Which websocket paths are chargers: `/ocpp/<chargeBoxId>` and nothing else."""

from __future__ import annotations

import pytest

from gateway.consumers import charge_box_id_from_scope


def scope(raw_path: str) -> dict:
    return {"path": raw_path, "raw_path": raw_path.encode("latin-1")}


@pytest.mark.parametrize(
    ("raw_path", "identity"),
    [
        ("/ocpp/CP1", ("CP1", "CP1")),
        ("/ocpp/CP1/", ("CP1", "CP1")),
        ("/ocpp/site%2FCP1", ("site/CP1", "site%2FCP1")),
        ("/ocpp/CP%201?x=1", ("CP 1", "CP%201")),
    ],
)
def test_a_charger_path_gives_its_id_and_the_escaping_it_used(raw_path, identity):
    assert charge_box_id_from_scope(scope(raw_path)) == identity


@pytest.mark.parametrize("raw_path", ["/CP1", "/ocpp16/CP1", "/ocpp/", "/ocpp", "/ocpp/a/b", "/x/ocpp/CP1", "/ocpp//", "/"])
def test_any_other_path_is_no_charger(raw_path):
    assert charge_box_id_from_scope(scope(raw_path)) is None
