"""gateway.upstream, the parts without a socket: reconnect backoff and the CSMS URL of a
charger."""

from __future__ import annotations

import itertools
import random
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.upstream import UpstreamConfig, UpstreamLink, backoff_delays, charger_url, escape_charge_box_id


def first(delays, count: int) -> list[float]:
    return list(itertools.islice(delays, count))


class RecordingRandom(random.Random):
    """Answers uniform(a, b) with b, the top of the jitter range, and remembers each range."""

    def __init__(self):
        super().__init__(0)
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a, b):
        self.ranges.append((a, b))
        return b


# --- backoff_delays --------------------------------------------------------------------------


def test_the_jitter_ceiling_doubles_from_the_minimum_up_to_the_maximum():
    rng = RecordingRandom()
    assert first(backoff_delays(1.0, 60.0, rng), 9) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_the_jitter_floor_is_half_the_minimum():
    rng = RecordingRandom()
    first(backoff_delays(2.0, 60.0, rng), 5)
    assert {low for low, _ in rng.ranges} == {1.0}


@given(
    st.floats(min_value=0.01, max_value=30.0),
    st.floats(min_value=0.0, max_value=600.0),
    st.integers(0, 2**32 - 1),
)
def test_every_delay_stays_between_half_the_minimum_and_the_maximum(minimum_s, extra_s, seed):
    maximum_s = minimum_s + extra_s
    delays = first(backoff_delays(minimum_s, maximum_s, random.Random(seed)), 40)
    assert all(minimum_s / 2 <= delay <= maximum_s for delay in delays)


@given(st.floats(min_value=0.01, max_value=30.0), st.floats(min_value=0.0, max_value=600.0))
def test_the_jitter_ceiling_never_shrinks(minimum_s, extra_s):
    rng = RecordingRandom()
    first(backoff_delays(minimum_s, minimum_s + extra_s, rng), 40)
    ceilings = [high for _, high in rng.ranges]
    assert ceilings == sorted(ceilings)
    assert ceilings[-1] == minimum_s + extra_s


def test_a_long_outage_keeps_yielding_delays_at_the_maximum():
    rng = RecordingRandom()
    delays = first(backoff_delays(0.001, 1e12, rng), 200)
    assert max(delays) <= 1e12
    assert delays[-1] == delays[-2]


def test_the_same_seed_gives_the_same_delays():
    assert first(backoff_delays(1.0, 60.0, random.Random(42)), 20) == first(backoff_delays(1.0, 60.0, random.Random(42)), 20)


def test_different_seeds_spread_reconnects_apart():
    assert first(backoff_delays(1.0, 60.0, random.Random(1)), 10) != first(backoff_delays(1.0, 60.0, random.Random(2)), 10)


def test_delays_are_jittered_not_fixed():
    delays = first(backoff_delays(1.0, 60.0, random.Random(7)), 30)
    assert len(set(delays[8:])) > 1


def test_a_maximum_below_the_minimum_still_bounds_every_delay():
    delays = first(backoff_delays(10.0, 2.0, random.Random(3)), 20)
    assert max(delays) <= 2.0


# --- charger_url -----------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["ws://csms.example/ocpp", "ws://csms.example/ocpp/", "ws://csms.example/ocpp//"])
def test_the_charger_url_joins_base_and_id_with_one_slash(base):
    assert charger_url(base, "CP-1") == "ws://csms.example/ocpp/CP-1"


def test_the_charger_url_on_a_bare_host_adds_the_slash():
    assert charger_url("wss://csms.example", "CP-1") == "wss://csms.example/CP-1"


@pytest.mark.parametrize("raw_id", ["CP%201", "CP%2F1", "%C3%A9t%C3%A9", "CP 1"])
def test_the_charger_url_keeps_the_escaping_the_charger_used(raw_id):
    assert charger_url("ws://csms.example/ocpp/", raw_id) == f"ws://csms.example/ocpp/{raw_id}"


@given(
    st.sampled_from(["ws://csms.example", "wss://10.0.0.1:9000/ocpp", "ws://h/a/b"]),
    st.text(alphabet="/", max_size=3),
    st.text(st.characters(exclude_characters="/"), min_size=1, max_size=20),
)
def test_the_charger_url_is_the_base_then_exactly_one_slash_then_the_id(base, trailing, raw_id):
    url = charger_url(base + trailing, raw_id)
    assert url == f"{base}/{raw_id}"


# --- escape_charge_box_id --------------------------------------------------------------------


def test_escaping_encodes_slashes_spaces_and_non_ascii():
    assert escape_charge_box_id("CP 1/é") == "CP%201%2F%C3%A9"


def test_escaping_keeps_the_usual_id_characters():
    assert escape_charge_box_id("CP-01_a.b~c:d@e") == "CP-01_a.b~c:d@e"


@given(st.text(max_size=30))
def test_an_escaped_id_unescapes_to_itself_and_holds_no_slash(charge_box_id):
    escaped = escape_charge_box_id(charge_box_id)
    assert "/" not in escaped and "?" not in escaped and "#" not in escaped
    assert unquote(escaped) == charge_box_id


# --- update_authorization --------------------------------------------------------------------


async def _noop(*args) -> None:
    return None


def test_a_new_authorization_applies_from_the_next_connection_with_the_first_candidate():
    link = UpstreamLink(UpstreamConfig(url="ws://csms.example/CP-1", authorization="Basic old"), _noop, _noop, _noop, "CP-1")
    link.update_authorization("Basic first", "Basic second")
    assert link.config.authorization == "Basic first"
    assert link.config.url == "ws://csms.example/CP-1"
    assert not link.connected


async def test_the_connect_gate_lets_no_more_handshakes_through_at_once_than_its_limit():
    import asyncio

    from gateway.upstream import ConnectGate

    gate = ConnectGate(3, jitter_s=0.001, rng=random.Random(1))
    release = asyncio.Event()
    most_active = 0

    async def handshake():
        nonlocal most_active
        async with gate.slot():
            most_active = max(most_active, gate.active)
            await release.wait()

    tasks = [asyncio.ensure_future(handshake()) for _ in range(20)]
    while gate.active + gate.waiting < 20:
        await asyncio.sleep(0)
    assert gate.active == 3 and gate.waiting == 17
    release.set()
    await asyncio.gather(*tasks)
    assert most_active == 3
    assert gate.active == 0 and gate.waiting == 0


async def test_a_handshake_cancelled_while_waiting_for_the_gate_gives_back_nothing_it_did_not_take():
    import asyncio

    from gateway.upstream import ConnectGate

    gate = ConnectGate(1, jitter_s=0.0)
    release = asyncio.Event()

    async def handshake():
        async with gate.slot():
            await release.wait()

    holder = asyncio.ensure_future(handshake())
    waiter = asyncio.ensure_future(handshake())
    while gate.waiting < 1:
        await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    release.set()
    await holder
    async with gate.slot():
        assert gate.active == 1
    assert gate.active == 0 and gate.waiting == 0
# --- reconnect failures are summarised during an outage ------------------------------------


def test_reconnect_failures_log_the_first_at_once_then_one_summary_per_interval(caplog):
    import logging

    from gateway.upstream import ReconnectFailureSummary

    now = [0.0]
    summary = ReconnectFailureSummary(interval_s=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="gateway.upstream"):
        for second in range(0, 61):
            now[0] = float(second)
            for charger in range(100):
                summary.failed(f"CP-{charger}", "Connect call failed")
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert lines[0].startswith("csms_reconnect_failed charge_box_id=CP-0 ")
    assert len(lines) == 3  # first failure, then one summary per 30 s, not 6100 lines
    assert lines[1].startswith("csms_reconnect_failed_summary chargers=100 attempts=")
    assert "error=Connect call failed" in lines[1]


def test_a_leg_coming_back_logs_what_the_window_held_and_the_next_outage_starts_afresh(caplog):
    import logging

    from gateway.upstream import ReconnectFailureSummary

    summary = ReconnectFailureSummary(interval_s=30, clock=lambda: 5.0)
    with caplog.at_level(logging.INFO, logger="gateway.upstream"):
        summary.failed("CP-1", "refused")
        summary.failed("CP-2", "refused")
        summary.flush()
        summary.flush()
        summary.failed("CP-3", "refused")
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert [line.split()[0] for line in lines] == [
        "csms_reconnect_failed",
        "csms_reconnect_failed_summary",
        "csms_reconnect_failed",
    ]
