"""Reads of gateway data for other apps (balancing, meters' simulator, pages)."""

from __future__ import annotations

from gateway.models import Charger
from gateway.state import ChargerState, Phases


def connected_charger_states() -> list[ChargerState]:
    """The live model of every connected charger, as last flushed (at most a second old)."""
    return [
        ChargerState.from_dict(charger.state)
        for charger in Charger.objects.filter(charger_connected=True).exclude(state={})
    ]


def metered_charging_current_a() -> Phases:
    """Sum of the per-phase currents the connected chargers last reported."""
    total = [0.0, 0.0, 0.0]
    for state in connected_charger_states():
        for connector_id, connector in state.connectors.items():
            if connector_id == 0 and len(state.connectors) > 1:
                continue  # connector 0 is the whole charger: already counted per connector
            for index, value in enumerate(connector.meter.current_a.as_tuple()):
                if value is not None:
                    total[index] += value
    return Phases(*total)
