"""Restart storms: a whole site's chargers connecting in the same second, after a restart or a
SIGKILL, and several server processes behind one port (docs/performance.md, "Storms")."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import websockets
from ocpp.v16 import call
from tests.e2e.test_offline import set_offline_policy
from tests.peers.charger import ConnectedCharger
from tests.peers.linkray import api_call, free_port
from tests.peers.waiting import wait_for

STORM_CHARGERS = 400
KILL_STORM_CHARGERS = 200


async def connect_all(url: str, charge_box_ids: list[str]) -> list[ConnectedCharger]:
    """Every charger opens its websocket at the same moment; raises on the first that fails."""
    results = await asyncio.gather(
        *(ConnectedCharger(url, charge_box_id).connect() for charge_box_id in charge_box_ids), return_exceptions=True
    )
    failures = [result for result in results if isinstance(result, BaseException)]
    chargers = [result for result in results if not isinstance(result, BaseException)]
    if failures:
        await close_all(chargers)
        kinds = sorted({f"{type(failure).__name__}: {failure}" for failure in failures})
        raise AssertionError(f"{len(failures)} of {len(charge_box_ids)} chargers failed to connect: {kinds[:5]}")
    return chargers


async def close_all(chargers: list[ConnectedCharger]) -> None:
    await asyncio.gather(*(charger.close() for charger in chargers), return_exceptions=True)


def boot() -> call.BootNotification:
    return call.BootNotification(charge_point_vendor="Storm", charge_point_model="S-1")


def queued_marks(csms, charge_box_id: str) -> list[str]:
    marks = []
    for raw in csms.received.get(charge_box_id, []):
        message = json.loads(raw)
        if message[0] == 2 and message[2] == "StatusNotification":
            marks.append(message[3].get("info"))
    return marks


def start_processes(stack, env: dict[str, str] | None = None) -> list:
    """Embedded: one LinkRay. Scale-out: two behind one port (SO_REUSEPORT)."""
    if stack.kind == "embedded":
        return [stack.start_linkray(env=env, name="a")]
    port = free_port()
    shared = {**(env or {}), "LINKRAY_REUSE_PORT": "true"}
    return [stack.start_linkray(env=shared, name=name, port=port) for name in ("a", "b")]


async def test_a_whole_site_connecting_in_the_same_second_is_accepted_and_relayed(stack):
    csms = await stack.start_csms()
    processes = start_processes(stack)
    charge_box_ids = [f"STORM{index:04d}" for index in range(STORM_CHARGERS)]
    chargers = await connect_all(processes[0].url, charge_box_ids)
    try:
        answers = await asyncio.gather(*(charger.call(boot()) for charger in chargers))
        assert {answer.status for answer in answers} == {"Accepted"}
        assert all(csms.actions_received(charge_box_id) == ["BootNotification"] for charge_box_id in charge_box_ids)
        log = "".join(process.log() for process in processes)
        assert "code=1006" not in log
        assert "charger_refused" not in log
        assert len(set(re.findall(r"charger_connected charge_box_id=(STORM\d+)", log))) == STORM_CHARGERS
    finally:
        await close_all(chargers)


async def test_a_sigkill_with_messages_queued_then_everyone_reconnecting_at_once_loses_and_duplicates_nothing(stack):
    csms = await stack.start_csms()
    csms_port = csms.port
    await csms.stop()  # the back office is away: every message is queued in LinkRay
    env = {"LINKRAY_CSMS_URL": f"ws://127.0.0.1:{csms_port}", "LINKRAY_ORPHAN_REPLAY_AFTER_S": "3600"}
    processes = start_processes(stack, env)
    set_offline_policy(stack, "accept_all")
    charge_box_ids = [f"KILL{index:04d}" for index in range(KILL_STORM_CHARGERS)]
    chargers = await connect_all(processes[0].url, charge_box_ids)
    try:
        await asyncio.gather(
            *(
                charger.call(
                    call.StatusNotification(connector_id=1, error_code="NoError", status="Available", info=f"queued-{charger.charge_box_id}")
                )
                for charger in chargers
            )
        )
    finally:
        for process in processes:
            process.kill()  # power cut, messages still queued
        await close_all(chargers)
    await csms.start(csms_port)
    for process in processes:
        process.start()
    chargers = await connect_all(processes[0].url, charge_box_ids)
    try:
        await wait_for(
            lambda: all(queued_marks(csms, charge_box_id) for charge_box_id in charge_box_ids), 60, "every queued message replayed"
        )
        answers = await asyncio.gather(*(charger.call(call.Heartbeat()) for charger in chargers))
        assert all(answer.current_time for answer in answers)
        for charge_box_id in charge_box_ids:
            assert queued_marks(csms, charge_box_id) == [f"queued-{charge_box_id}"], charge_box_id
        await wait_for(
            lambda: stack.query("SELECT COUNT(*) FROM gateway_charger WHERE charger_connected AND charge_box_id LIKE 'KILL%%'")
            == [(KILL_STORM_CHARGERS,)],
            30,
            "every charger connected in the live model",
        )
        await wait_for(lambda: stack.query("SELECT COUNT(*) FROM gateway_queuedmessage") == [(0,)], 30, "queue emptied")
    finally:
        await close_all(chargers)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
async def test_one_address_beyond_its_connection_limit_gets_503_with_retry_after_and_a_log_line(stack):
    await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_MAX_CONNECTIONS_PER_ADDRESS": "3", "LINKRAY_RETRY_AFTER_S": "7"})
    chargers = await connect_all(linkray.url, ["LIM1", "LIM2", "LIM3"])
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ConnectedCharger(linkray.url, "LIM4").connect()
        response = refused.value.response
        assert response.status_code == 503
        assert 7 <= int(response.headers["Retry-After"]) <= 14
        await wait_for(
            lambda: re.search(
                r"charger_refused charge_box_id=LIM4 reason=too_many_connections_from_address address=127.0.0.1 open=3 limit=3 "
                r"status=503 retry_after_s=\d+",
                linkray.log(),
            ),
            what="the refusal logged",
        )
        await chargers.pop().close()
        # As a charger would after its Retry-After (shortened: the slot frees once LIM3's
        # socket is fully torn down).
        again = await retry_while_refused(lambda: ConnectedCharger(linkray.url, "LIM4").connect())
        chargers.append(again)
        assert (await again.call(call.Heartbeat())).current_time
    finally:
        await close_all(chargers)


async def retry_while_refused(connect, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await connect()
        except websockets.InvalidStatus as error:
            if error.response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("stack", ["scaleout"], indirect=True)
async def test_two_processes_behind_one_port_share_the_chargers_and_reach_each_of_them_from_the_api(stack):
    csms = await stack.start_csms()
    token = "reuse-port-token"
    first, second = start_processes(stack, {"LINKRAY_API_TOKEN": token})
    charge_box_ids = [f"SHARE{index:02d}" for index in range(40)]
    chargers = await connect_all(first.url, charge_box_ids)
    try:
        await wait_for(lambda: all(charge_box_id in csms.connections for charge_box_id in charge_box_ids), 20, "all CSMS legs")
        on_first = set(re.findall(r"charger_connected charge_box_id=(SHARE\d+)", first.log()))
        on_second = set(re.findall(r"charger_connected charge_box_id=(SHARE\d+)", second.log()))
        assert on_first and on_second, "the kernel spreads connections over both processes"
        assert on_first | on_second == set(charge_box_ids) and not on_first & on_second
        # Each API request opens its own connection, which either process may take: a charger
        # held by either one is reached every time.
        targets = [sorted(on_first)[0], sorted(on_second)[0]]
        for attempt in range(6):
            charge_box_id = targets[attempt % 2]
            result = await asyncio.to_thread(
                api_call, first.http_url, token, charge_box_id, "GetConfiguration", {"key": ["ChargeProfileMaxStackLevel"]}
            )
            assert result["payload"]["configurationKey"][0]["value"] == "8"
        by_id = {charger.charge_box_id: charger for charger in chargers}
        for charge_box_id in targets:
            assert by_id[charge_box_id].peer.requests.count(("GetConfiguration", {"key": ["ChargeProfileMaxStackLevel"]})) == 3
    finally:
        await close_all(chargers)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_reuse_port_without_redis_is_refused_with_a_clear_error(stack):
    result = stack.manage("serve", "--port", "0", "--reuse-port")
    assert result.returncode != 0
    assert "--reuse-port: several server processes need REDIS_URL" in result.stderr


async def test_a_csms_slow_to_answer_handshakes_gets_few_at_once_and_stalls_no_charger_already_through(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_CONNECT_CONCURRENCY": "5", "LINKRAY_CSMS_ADMIT_WAIT_S": "1"})
    set_offline_policy(stack, "accept_all")
    async with ConnectedCharger(linkray.url, "THROUGH") as through:
        await csms.wait_connected("THROUGH")
        csms.handshake_gate = asyncio.Event()  # from now on the CSMS sits on every handshake
        charge_box_ids = [f"SLOW{index:02d}" for index in range(30)]
        late = await connect_all(linkray.url, charge_box_ids)  # accepted while their legs wait
        try:
            await wait_for(lambda: csms.handshakes_in_progress == 5, what="the gate's five handshakes at the CSMS")
            for _ in range(3):
                assert (await through.call(call.Heartbeat())).current_time
            assert csms.actions_received("THROUGH") == ["Heartbeat"] * 3
            answers = await asyncio.gather(*(charger.call(call.Heartbeat()) for charger in late))
            assert all(answer.current_time for answer in answers)  # served while their CSMS legs wait
            assert csms.most_handshakes_at_once == 5
            csms.handshake_gate.set()
            await wait_for(lambda: all(charge_box_id in csms.connections for charge_box_id in charge_box_ids), 30, "every leg up")
            assert csms.most_handshakes_at_once == 5
            assert "csms_connect_throttled limit=5" in linkray.log()
        finally:
            await close_all(late)


async def test_a_charger_that_gives_up_during_its_admission_gets_no_csms_leg(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_CSMS_ADMIT_WAIT_S": "2"})
    csms.handshake_gate = asyncio.Event()  # the CSMS leg's handshake hangs: the admission waits
    with pytest.raises(TimeoutError):
        await websockets.connect(f"{linkray.url}/GIVEUP", subprotocols=["ocpp1.6"], open_timeout=0.5)
    await wait_for(
        lambda: "charger_gone_during_admission charge_box_id=GIVEUP stage=csms_leg" in linkray.log(), 15, "the give-up noticed"
    )
    csms.handshake_gate.set()
    async with ConnectedCharger(linkray.url, "AFTER") as after:
        await csms.wait_connected("AFTER")
        assert (await after.call(call.Heartbeat())).current_time
    # LinkRay dropped the half-open CSMS handshake: no leg of GIVEUP stays open at the CSMS.
    await wait_for(lambda: "GIVEUP" not in csms.connections, what="no CSMS leg of GIVEUP")
    assert "csms_connected charge_box_id=GIVEUP" not in linkray.log()
    assert "charger_connected charge_box_id=GIVEUP" not in linkray.log()
    await wait_for(
        lambda: stack.query("SELECT charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("GIVEUP",)) == [(False,)],
        what="GIVEUP shown disconnected",
    )


async def test_an_admission_past_its_deadline_gets_503_with_retry_after_not_a_silent_close(stack):
    csms = await stack.start_csms()
    linkray = stack.start_linkray(env={"LINKRAY_ADMISSION_TIMEOUT_S": "1", "LINKRAY_CSMS_ADMIT_WAIT_S": "2"})
    csms.handshake_gate = asyncio.Event()  # the CSMS leg takes longer than the admission may
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ConnectedCharger(linkray.url, "LATE").connect()
        assert refused.value.response.status_code == 503
        assert int(refused.value.response.headers["Retry-After"]) >= 10
        assert re.search(
            r"charger_refused charge_box_id=LATE reason=admission_timeout stage=csms_leg waited_s=[\d.]+ status=503", linkray.log()
        )
        assert "csms_connected charge_box_id=LATE" not in linkray.log()
    finally:
        csms.handshake_gate.set()
    await wait_for(
        lambda: stack.query("SELECT charger_connected FROM gateway_charger WHERE charge_box_id=%s", ("LATE",)) == [(False,)],
        what="LATE shown disconnected",
    )
