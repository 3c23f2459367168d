"""Offline continuity for one session: serve the charger while the CSMS is away, keep what
the CSMS must receive, and replay it in order, once, when the CSMS is back.

The asyncio adapter between ChargerSession, the pure rules in gateway.offline and the durable
store in gateway.offline_store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateway import observe, offline, offline_store, profiles
from gateway.frames import CALLERROR, CALLRESULT, Call, CallError, CallResult, FrameError, build_call, build_call_error, build_call_result, parse_frame
from gateway.session import (
    CHARGER_TO_LINKRAY,
    LINKRAY_TO_CHARGER,
    LINKRAY_TO_CSMS,
    ChargerSession,
    CommandError,
)

logger = logging.getLogger(__name__)


async def attach_offline(session: ChargerSession) -> None:
    backlog, local_to_csms = await database_sync_to_async(offline_store.offline_start)(session.charge_box_id, session.now())
    session.attach_offline(OfflineRelay(session, backlog, local_to_csms))


def _rewritten(call: Call, mapper, mapping: dict[int, int]) -> str | bytes:
    """The frame with its transaction id mapped, or the original bytes when nothing maps."""
    if not mapping:
        return call.raw
    mapped = mapper(call.action, call.payload, mapping)
    return call.raw if mapped is None else build_call(call.unique_id, call.action, mapped).raw


class OfflineRelay:
    def __init__(self, session: ChargerSession, backlog: int, local_to_csms: dict[int, int]):
        self.session = session
        # Messages stored and not yet answered by the CSMS (including ones being stored now):
        # while there are any, charger CALLs join the queue instead of overtaking it.
        self.backlog = backlog
        self.local_to_csms = dict(local_to_csms)
        self.csms_to_local = {csms: local for local, csms in local_to_csms.items()}
        self._replay_task: asyncio.Task | None = None
        self._waiter: tuple[str, asyncio.Future] | None = None
        self._stored = asyncio.Event()
        self._storing = 0
        self.replayed = 0
        # Transactions (the charger's ids) LinkRay stopped because the CSMS rejected their idTag.
        self.deauthorized: set[int] = set()

    # --- what the session asks -------------------------------------------------------------

    @property
    def holds_traffic(self) -> bool:
        return self.backlog > 0

    def needs_parsed(self, action: str) -> bool:
        if not self.session.relaying_live:
            return True
        return bool(self.local_to_csms) and action in offline.TO_CSMS_WITH_TRANSACTION

    def maps_transactions(self, action: str) -> bool:
        return bool(self.csms_to_local) and action in offline.TO_CHARGER_WITH_TRANSACTION

    def rewrite_to_csms(self, call: Call) -> str | bytes:
        if self.deauthorized:
            payload = offline.deauthorized_stop(call.action, call.payload, self.deauthorized)
            if payload is not None:
                self._log_deauthorized(payload)
                mapped = offline.map_to_csms(call.action, payload, self.local_to_csms)
                return build_call(call.unique_id, call.action, mapped or payload).raw
        return _rewritten(call, offline.map_to_csms, self.local_to_csms)

    def _log_deauthorized(self, payload: dict) -> None:
        logger.info(
            "stop_reason_rewritten charge_box_id=%s transaction_id=%s from=Remote to=DeAuthorized",
            self.session.charge_box_id,
            payload.get("transactionId"),
        )

    def rewrite_to_charger(self, call: Call) -> str | bytes:
        return _rewritten(call, offline.map_to_charger, self.csms_to_local)

    def claims_answer(self, unique_id: str) -> bool:
        return self._waiter is not None and self._waiter[0] == unique_id

    # --- serving the charger locally -------------------------------------------------------

    async def on_charger_call(
        self, raw: str | bytes, call: Call | None, unique_id: str, action: str | None, *, journal: bool = True
    ) -> None:
        session = self.session
        cbid = session.charge_box_id
        if journal:
            session.journal.record(CHARGER_TO_LINKRAY, cbid, 2, unique_id, action, raw)
        if call is None:
            try:
                parsed = parse_frame(raw)
            except FrameError as error:
                await self._answer_error(unique_id, action, error.code, error.reason)
                return
            if not isinstance(parsed, Call):
                return
            call = parsed
        action = call.action
        now = session.now()
        if action not in offline.ANSWERABLE:
            await self._answer_error(unique_id, action, "NotSupported", "CSMS unreachable; LinkRay cannot answer this action")
            return
        stored = None
        # Without a CSMS configured LinkRay is the site's only controller: nothing to hand on,
        # but a StartTransaction still needs a durable, unique local transaction id.
        keep = session.upstream is not None
        if offline.is_stored(action) and (keep or action == "StartTransaction"):
            self.backlog += keep
            self._storing += 1
            try:
                stored = await database_sync_to_async(offline_store.store_message)(
                    cbid,
                    unique_id,
                    action,
                    raw,
                    now,
                    local_transaction_base=settings.LINKRAY_LOCAL_TRANSACTION_ID_BASE,
                    keep=keep,
                )
            except Exception:
                self.backlog -= keep
                logger.exception("offline_store_failed charge_box_id=%s action=%s", cbid, action)
                await self._answer_error(unique_id, action, "InternalError", "LinkRay could not store the message")
                return
            finally:
                self._storing -= 1
                self._stored.set()
        id_tag_status = None
        if action in ("Authorize", "StartTransaction"):
            id_tag_status = await self._authorize_offline(call.payload.get("idTag"), now)
        payload = offline.local_answer(
            action,
            call.payload,
            now=now,
            heartbeat_interval_s=settings.LINKRAY_OFFLINE_HEARTBEAT_INTERVAL_S,
            id_tag_status=id_tag_status,
            transaction_id=stored.local_transaction_id if stored else None,
        )
        answer = build_call_result(unique_id, payload)
        session.observe_local_exchange(call, answer)
        logger.debug(
            "answered_offline charge_box_id=%s action=%s stored=%s backlog=%d", cbid, action, keep and stored is not None, self.backlog
        )
        await session.send_to_charger(LINKRAY_TO_CHARGER, CALLRESULT, unique_id, action, answer.raw)
        if self.backlog and session.upstream is not None and session.upstream.connected:
            self._start_replay()

    async def _authorize_offline(self, id_tag: Any, now) -> str:
        policy = await database_sync_to_async(offline_store.offline_policy)()
        status, expiry = (None, None)
        if policy == offline.CACHE and isinstance(id_tag, str):
            recent = self.session.hooks.recent_authorization(id_tag)
            if recent is not None:
                status, expiry = recent
            else:
                status, expiry = await database_sync_to_async(offline_store.cached_authorization)(id_tag)
        return offline.authorization_status(policy, status, expiry, now)

    async def _answer_error(self, unique_id: str, action: str | None, code: str, description: str) -> None:
        if self.session.should_log_repeat("offline_call_refused"):
            logger.warning(
                "offline_call_refused charge_box_id=%s action=%s code=%s reason=%s count=%d",
                self.session.charge_box_id,
                action,
                code,
                description,
                self.session.repeats("offline_call_refused"),
            )
        error = build_call_error(unique_id, code, description)
        await self.session.send_to_charger(LINKRAY_TO_CHARGER, CALLERROR, unique_id, action, error.raw)

    # --- CSMS comes and goes ---------------------------------------------------------------

    async def on_csms_down(self, pending: list) -> None:
        self._fail_waiter(ConnectionError("CSMS leg dropped"))
        for unique_id, item in pending:
            # The charger is still waiting for these; their answers are lost with the leg.
            logger.info("csms_answer_lost charge_box_id=%s action=%s unique_id=%s", self.session.charge_box_id, item.action, unique_id)
            await self.on_charger_call(item.raw, item.call, unique_id, item.action, journal=False)

    async def on_csms_up(self) -> None:
        if self.backlog:
            self._start_replay()

    async def on_session_closed(self) -> None:
        self._fail_waiter(ConnectionError("charger disconnected"))
        if self._replay_task is not None:
            self._replay_task.cancel()

    def _fail_waiter(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter[1].done():
            self._waiter[1].set_exception(error)

    async def on_csms_answer(self, raw: str | bytes, unique_id: str) -> None:
        if self._waiter is not None and self._waiter[0] == unique_id and not self._waiter[1].done():
            self._waiter[1].set_result(raw)

    # --- replay ----------------------------------------------------------------------------

    def _start_replay(self) -> None:
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.ensure_future(self._replay())

    async def _replay(self) -> None:
        session = self.session
        cbid = session.charge_box_id
        logger.info("replay_started charge_box_id=%s backlog=%d", cbid, self.backlog)
        try:
            while True:
                batch = await database_sync_to_async(offline_store.load_backlog)(cbid)
                if not batch:
                    if self._storing:
                        self._stored.clear()
                        await self._stored.wait()
                        continue
                    # Nothing stored and nothing being stored: live relaying resumes.
                    self.backlog = 0
                    logger.info("replay_finished charge_box_id=%s replayed=%d", cbid, self.replayed)
                    return
                for message in batch:
                    if not await self._replay_one(message):
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            # e.g. the database briefly unavailable: the queue is intact, so try again later
            # rather than hold this charger's traffic until the next reconnect.
            logger.exception("replay_failed charge_box_id=%s", cbid)
            asyncio.get_running_loop().call_later(5.0, self._retry_replay)
        finally:
            self._waiter = None

    def _retry_replay(self) -> None:
        session = self.session
        if self.backlog and not session.closed and session.upstream is not None and session.upstream.connected:
            self._start_replay()

    async def _replay_one(self, message: offline_store.StoredMessage) -> bool:
        session = self.session
        cbid = session.charge_box_id
        upstream = session.upstream
        if upstream is None or not upstream.connected:
            return False
        raw = message.raw
        try:
            call = parse_frame(raw)
        except FrameError:
            call = None
        if isinstance(call, Call):
            deauthorized = offline.deauthorized_stop(call.action, call.payload, self.deauthorized) if self.deauthorized else None
            if deauthorized is not None:
                self._log_deauthorized(deauthorized)
            payload = offline.for_replay(call.action, deauthorized or call.payload, message.received_at, self.local_to_csms)
            payload = payload or deauthorized
            if payload is not None:
                raw = build_call(call.unique_id, call.action, payload).raw
        future = asyncio.get_running_loop().create_future()
        self._waiter = (message.unique_id, future)
        session.journal.record(LINKRAY_TO_CSMS, cbid, 2, message.unique_id, message.action, raw)
        if not await upstream.send(raw):
            await self._count_attempt(message)
            return False
        try:
            answer_raw = await asyncio.wait_for(future, session.config.call_timeout_s)
        except (ConnectionError, asyncio.CancelledError):
            await asyncio.shield(self._count_attempt(message))
            return False
        except asyncio.TimeoutError:
            # A CSMS that stops answering is as good as gone: drop the leg, and the message is
            # resent once on the next connection (its answer was lost).
            logger.warning("replay_answer_timeout charge_box_id=%s action=%s", cbid, message.action)
            await self._count_attempt(message)
            await upstream.drop()
            return False
        finally:
            self._waiter = None
        try:
            answer = parse_frame(answer_raw)
        except FrameError:
            answer = None
        csms_transaction_id = None
        id_tag_status = None
        if message.action == "StartTransaction" and isinstance(answer, CallResult):
            transaction_id = answer.payload.get("transactionId")
            if isinstance(transaction_id, int) and not isinstance(transaction_id, bool):
                csms_transaction_id = transaction_id
            id_tag_info = answer.payload.get("idTagInfo")
            if isinstance(id_tag_info, dict):
                id_tag_status = id_tag_info.get("status")
        await database_sync_to_async(offline_store.complete_message)(
            message.id,
            charge_box_id=cbid,
            local_transaction_id=message.local_transaction_id,
            csms_transaction_id=csms_transaction_id,
            id_tag_status=id_tag_status if isinstance(id_tag_status, str) else None,
        )
        self.backlog = max(0, self.backlog - 1)
        self.replayed += 1
        if isinstance(answer, CallError):
            logger.warning(
                "replay_answered_with_error charge_box_id=%s action=%s code=%s description=%s",
                cbid,
                message.action,
                answer.error_code,
                answer.error_description,
            )
        if isinstance(call, Call) and isinstance(answer, CallResult):
            self._learn_from_replay(call, answer)
            if call.action == "BootNotification" and not session.headless:
                self._follow_boot_answer(answer.payload)
        if message.local_transaction_id is not None and csms_transaction_id is not None:
            self._map_transaction(message.local_transaction_id, csms_transaction_id, id_tag_status)
        return True

    async def _count_attempt(self, message: offline_store.StoredMessage) -> None:
        """A replay that got no answer (leg dropped, timed out): counted on the queued row,
        so the operator sees which messages keep failing."""
        try:
            await database_sync_to_async(offline_store.count_attempt)(message.id)
        except Exception:
            logger.exception("replay_attempt_count_failed charge_box_id=%s", self.session.charge_box_id)

    def _follow_boot_answer(self, answer: dict) -> None:
        follow_up = offline.boot_follow_up(answer, settings.LINKRAY_OFFLINE_HEARTBEAT_INTERVAL_S)
        if follow_up.heartbeat_interval_s is not None or follow_up.boot_again_after_s is not None:
            asyncio.ensure_future(self._apply_boot_follow_up(follow_up))

    async def _apply_boot_follow_up(self, follow_up: offline.BootFollowUp) -> None:
        session = self.session
        cbid = session.charge_box_id
        try:
            if follow_up.heartbeat_interval_s is not None:
                result = await session.call(
                    "ChangeConfiguration", {"key": "HeartbeatInterval", "value": str(follow_up.heartbeat_interval_s)}
                )
                logger.info(
                    "replayed_boot_applied charge_box_id=%s status=%s heartbeat_interval_s=%d change=%s",
                    cbid,
                    follow_up.status,
                    follow_up.heartbeat_interval_s,
                    result.get("status"),
                )
            if follow_up.boot_again_after_s is not None:
                logger.warning(
                    "replayed_boot_not_accepted charge_box_id=%s status=%s boot_again_after_s=%d",
                    cbid,
                    follow_up.status,
                    follow_up.boot_again_after_s,
                )
                await asyncio.sleep(follow_up.boot_again_after_s)
                if session.closed:
                    return
                result = await session.call("TriggerMessage", {"requestedMessage": "BootNotification"})
                logger.info("replayed_boot_retriggered charge_box_id=%s trigger=%s", cbid, result.get("status"))
        except CommandError as error:
            logger.warning("replayed_boot_not_applied charge_box_id=%s status=%s error=%s", cbid, follow_up.status, error)

    def _learn_from_replay(self, call: Call, answer: CallResult) -> None:
        effects = observe.authorization_effects_of(call, answer)
        if effects:
            self.session.hooks.effects(self.session, effects)

    def _map_transaction(self, local_id: int, csms_id: int, id_tag_status: Any) -> None:
        session = self.session
        self.local_to_csms[local_id] = csms_id
        self.csms_to_local[csms_id] = local_id
        transaction = session.state.transactions.get(local_id)
        if transaction is not None:
            transaction.csms_transaction_id = csms_id
            session.hooks.state_changed(session)
        logger.info(
            "offline_transaction_mapped charge_box_id=%s transaction_id=%s csms_transaction_id=%s",
            session.charge_box_id,
            local_id,
            csms_id,
        )
        if isinstance(id_tag_status, str) and id_tag_status != "Accepted":
            logger.warning(
                "offline_transaction_rejected charge_box_id=%s transaction_id=%s csms_transaction_id=%s status=%s",
                session.charge_box_id,
                local_id,
                csms_id,
                id_tag_status,
            )
            if transaction is not None:
                transaction.id_tag_status = id_tag_status
                asyncio.ensure_future(self._act_on_invalid_id(transaction))

    async def _act_on_invalid_id(self, transaction) -> None:
        """What the charger would have done had it been online (StopTransactionOnInvalidId)."""
        session = self.session
        try:
            answer = await session.call("GetConfiguration", {"key": ["StopTransactionOnInvalidId"]})
            value = None
            for entry in answer.get("configurationKey") or []:
                if isinstance(entry, dict) and entry.get("key") == "StopTransactionOnInvalidId":
                    value = entry.get("value")
            if transaction.transaction_id not in session.state.transactions:
                return  # already stopped meanwhile
            if offline.stop_on_invalid_id(value):
                # The charger will report reason Remote; the CSMS sees DeAuthorized (see
                # offline.deauthorized_stop).
                self.deauthorized.add(transaction.transaction_id)
                result = await session.call("RemoteStopTransaction", {"transactionId": transaction.transaction_id})
                outcome = f"remote stop {result.get('status')}"
            else:
                # Keep the transaction but stop the energy, as StopTransactionOnInvalidId=false asks.
                result = await session.call(
                    "SetChargingProfile", profiles.stop_energy_request(transaction.connector_id, transaction.transaction_id)
                )
                outcome = f"energy stopped (0 A profile {result.get('status')})"
            logger.warning(
                "offline_transaction_invalid_id_handled charge_box_id=%s transaction_id=%s outcome=%s",
                session.charge_box_id,
                transaction.transaction_id,
                outcome,
            )
        except CommandError as error:
            logger.warning(
                "offline_transaction_invalid_id_unhandled charge_box_id=%s transaction_id=%s error=%s",
                session.charge_box_id,
                transaction.transaction_id,
                error,
            )
