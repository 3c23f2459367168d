"""Hostile input, small-sized (bench/fuzz_frames.py is the full run with timings): garbage from
a few chargers while others work. LinkRay keeps running, the others see no error, the journal
records what came in, the log stays readable."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from bench.fuzz_frames import WorkTally, send_hostile, work
from tests.peers.waiting import wait_for


async def test_hostile_frames_from_some_chargers_leave_the_others_working_and_are_journaled(stack):
    await stack.start_csms()
    linkray = stack.start_linkray(
        # Budgets raised so the small run is quick; the throttle has its own test below.
        env={"LINKRAY_CHARGER_MAX_FRAMES_PER_S": "500", "LINKRAY_CHARGER_MAX_BYTES_PER_S": str(8 * 1024 * 1024)}
    )
    hostile_ids = ["FUZZ-1", "FUZZ-2"]
    stop, tally = asyncio.Event(), WorkTally()
    workers = [asyncio.create_task(work(linkray.url, cbid, stop, tally, interval_s=0.02)) for cbid in ("WORK-1", "WORK-2")]
    await wait_for(lambda: len(tally.round_trips_ms) >= 10, what="working chargers going")
    hostile = await send_hostile(linkray.url, hostile_ids, 400, seed=7)
    working_during = len(tally.round_trips_ms)
    await wait_for(lambda: len(tally.round_trips_ms) >= working_during + 10, what="working chargers still going")
    stop.set()
    await asyncio.gather(*workers)

    assert linkray.process.poll() is None
    with urllib.request.urlopen(linkray.http_url + "/healthz", timeout=10) as response:
        assert response.status == 200
    assert tally.errors == []
    assert set(hostile.by_kind) >= {"bad_json", "wrong_types", "huge_ids", "deep_nesting", "invalid_utf8_text", "binary", "flood"}

    def journaled(where: str = "") -> int:
        return stack.query(
            "SELECT count(*) FROM gateway_journalentry WHERE charge_box_id IN ('FUZZ-1','FUZZ-2') "
            "AND direction LIKE 'charger>%%' " + where
        )[0][0]

    # Every kind that reaches LinkRay is in the journal: bad JSON, deep nesting, the flood.
    await wait_for(lambda: journaled("AND raw = 'not json'") > 0, what="bad JSON journaled")
    assert journaled("AND (raw LIKE '%%[[[[[[[[%%' OR raw LIKE '%%{\"a\":{\"a\":{\"a\":%%')") > 0
    assert journaled("AND raw LIKE '[2,\"fz%%\",\"Heartbeat\",{}]'") >= 100
    reached = hostile.sent - hostile.by_kind["invalid_utf8_text"] - hostile.by_kind["oversized"]
    assert journaled() >= reached // 2
    log = linkray.log()
    assert "Traceback" not in log
    # The log says what came in, without a line per bad frame.
    assert "frame_unparsed charge_box_id=FUZZ-1" in log
    assert log.count("frame_unparsed charge_box_id=FUZZ-1") < 40


async def test_a_charger_flooding_calls_is_throttled_and_still_answered(stack):
    await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_CHARGER_MAX_FRAMES_PER_S": "20"})
    import websockets

    async with websockets.connect(f"{linkray.url}/CP-FLOOD", subprotocols=["ocpp1.6"]) as websocket:
        for number in range(100):  # without waiting for any answer
            await websocket.send(json.dumps([2, f"f{number}", "Heartbeat", {}]))
        answers = set()
        while len(answers) < 100:
            answer = json.loads(await asyncio.wait_for(websocket.recv(), 20))
            answers.add(answer[1])
    assert answers == {f"f{number}" for number in range(100)}
    assert "charger_throttled charge_box_id=CP-FLOOD" in linkray.log()
