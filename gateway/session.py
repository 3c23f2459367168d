"""One charger's relay: the charger leg, the CSMS leg, and LinkRay's own CALLs between them.

Django-free asyncio. The consumer hands it the charger leg and feeds it frames; the session
forwards every frame unchanged (except transaction ids it must map, see offline.py) and keeps
the ChargerState up to date from the exchanges it sees.

Towards the charger there is one outstanding CALL at a time (OCPP-J §4.1.1), shared by the
CSMS and LinkRay: whichever CALL is waiting holds the others back until it is answered or has
timed out.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway import observe
from gateway.frames import (
    CALL,
    CALLERROR,
    Call,
    CallError,
    CallResult,
    FrameError,
    build_call,
    build_call_error,
    parse_frame,
)
from gateway.state import ChargerState
from linkray_site.metrics import RELAY_ROUND_TRIP

logger = logging.getLogger(__name__)

# Journal directions.
CHARGER_TO_CSMS = "charger>csms"
CSMS_TO_CHARGER = "csms>charger"
LINKRAY_TO_CHARGER = "linkray>charger"
CHARGER_TO_LINKRAY = "charger>linkray"
LINKRAY_TO_CSMS = "linkray>csms"
CSMS_TO_LINKRAY = "csms>linkray"

# Charger CALLs whose payload feeds the model at request time, and exchanges observed once the
# answer is in. Everything else is relayed without parsing its payload.
_OBSERVED_CHARGER_CALLS = frozenset({"StatusNotification", "MeterValues"})
_OBSERVED_CHARGER_EXCHANGES = frozenset({"BootNotification", "Authorize", "StartTransaction", "StopTransaction"})
_OBSERVED_CSMS_EXCHANGES = frozenset({"SetChargingProfile", "ClearChargingProfile", "ChangeConfiguration"})
_OBSERVED_LINKRAY_EXCHANGES = frozenset({"SetChargingProfile", "GetConfiguration"})

# The head of a well-formed frame: message type, unique id and (for a CALL) action. Reading
# only the head keeps frames nobody needs to understand (Heartbeat, DataTransfer, their
# answers) from being parsed at all.
_HEAD = re.compile(r'\s*\[\s*([234])\s*,\s*"([^"\\]{0,36})"\s*(?:,\s*"([A-Za-z0-9_.-]{1,64})"\s*,)?')


# Of a frame over max_frame_bytes, the journal keeps this many characters.
_OVERSIZED_KEPT = 1024
# Warnings about one charger's bad frames logged in full before only every 100th is.
_LOGGED_REPEATS = 5


class ChargerLeg(Protocol):
    async def send_frame(self, raw: str | bytes) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


class Journal(Protocol):
    def record(
        self,
        direction: str,
        charge_box_id: str,
        message_type: int | None,
        unique_id: str | None,
        action: str | None,
        raw: str | bytes,
    ) -> None: ...


class SessionHooks(Protocol):
    """What the session asks of its persistence adapter. Must not block."""

    def state_changed(self, session: ChargerSession) -> None: ...

    def effects(self, session: ChargerSession, effects: list[observe.Effect]) -> None: ...

    def recent_authorization(self, id_tag: str) -> tuple[str, object] | None: ...


class CsmsLeg(Protocol):
    """The CSMS side (gateway.upstream.UpstreamLink): one websocket to the back office."""

    @property
    def connected(self) -> bool: ...

    async def send(self, raw: str | bytes) -> bool:
        """False when the leg dropped before the frame went out."""
        ...

    async def close(self) -> None: ...

    def update_authorization(self, *candidates: str) -> None: ...


class OfflineRelay(Protocol):
    """Serves the charger while the CSMS is away and replays afterwards
    (gateway.offline_runtime.OfflineRelay)."""

    @property
    def holds_traffic(self) -> bool:
        """True while an outage or its replay backlog keeps charger CALLs from going live."""
        ...

    def needs_parsed(self, action: str) -> bool: ...

    def maps_transactions(self, action: str) -> bool: ...

    def rewrite_to_csms(self, call: Call) -> str | bytes: ...

    def rewrite_to_charger(self, call: Call) -> str | bytes: ...

    def claims_answer(self, unique_id: str) -> bool: ...

    async def on_charger_call(
        self, raw: str | bytes, call: Call | None, unique_id: str, action: str | None, *, journal: bool = True
    ) -> None: ...

    async def on_csms_answer(self, raw: str | bytes, unique_id: str) -> None: ...

    async def on_csms_down(self, pending: list[tuple[str, _Pending]]) -> None: ...

    async def on_csms_up(self) -> None: ...

    async def on_session_closed(self) -> None: ...


class CommandError(Exception):
    """A LinkRay CALL to a charger did not get a CALLRESULT."""


class ChargerNotConnected(CommandError):
    pass


class CallTimedOut(CommandError):
    pass


class CallErrorReceived(CommandError):
    def __init__(self, error_code: str, description: str, details: dict[str, Any]):
        super().__init__(f"{error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.details = details


@dataclass(slots=True)
class _Outbound:
    """A CALL waiting for, or holding, the slot towards the charger."""

    origin: str  # "csms" or "linkray"
    call: Call | None  # parsed CALL (LinkRay's own, or a CSMS CALL we observe)
    unique_id: str
    action: str
    raw: str | bytes
    timeout_s: float
    future: asyncio.Future | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Pending:
    """A charger CALL forwarded to the CSMS, waiting for its answer."""

    action: str
    call: Call | None
    raw: str | bytes
    sent_at: float = 0.0


@dataclass
class SessionConfig:
    call_timeout_s: float = 30.0
    max_frame_bytes: int = 256 * 1024
    pending_limit: int = 16


def basic_auth_header(charge_box_id: str, key_hex: str) -> str | None:
    """OCPP security profile 1/2: user is the charge box id, password the AuthorizationKey's
    bytes (the CSMS writes the key hex-encoded); None if the key is not hex."""
    try:
        password = bytes.fromhex(key_hex)
    except ValueError:
        return None
    return "Basic " + base64.b64encode(charge_box_id.encode("utf-8") + b":" + password).decode("ascii")


def plain_basic_auth_header(charge_box_id: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{charge_box_id}:{password}".encode("utf-8")).decode("ascii")


def frame_head(raw: str | bytes) -> tuple[int, str, str | None] | None:
    """(message type, unique id, action) read from the frame's head, or None if unreadable."""
    if isinstance(raw, bytes):
        head = raw[:200]
        try:
            raw = head.decode("utf-8")
        except UnicodeDecodeError as error:
            # A cut inside a multi-byte character at the very end is fine; bad bytes are not.
            if error.start < len(head) - 3:
                return None
            raw = head[: error.start].decode("utf-8")
    match = _HEAD.match(raw)
    if match is None:
        return None
    return int(match.group(1)), match.group(2), match.group(3)


class ChargerSession:
    def __init__(
        self,
        charge_box_id: str,
        charger: ChargerLeg,
        *,
        journal: Journal,
        hooks: SessionHooks,
        config: SessionConfig,
        state: ChargerState | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.charge_box_id = charge_box_id
        self.state = state or ChargerState(charge_box_id)
        self.config = config
        self._charger = charger
        self.journal = journal
        self.hooks = hooks
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self.upstream: CsmsLeg | None = None  # set by attach_upstream(); None = no CSMS configured
        self.offline: OfflineRelay | None = None  # set by attach_offline(); serves chargers while the CSMS is away
        # Towards the charger: the one outstanding CALL, and those waiting for it.
        self._slot: _Outbound | None = None
        self._queue: deque[_Outbound] = deque()
        # Towards the CSMS: charger CALLs waiting for the CSMS's answer.
        self._pending: dict[str, _Pending] = {}
        self._own_ids = itertools.count(1)
        self._own_prefix = "lr-" + secrets.token_hex(4) + "-"
        self.closed = False
        # A session without a charger (orphan replay): nothing can be sent to the charger.
        self.headless = False
        # Warnings about this charger's frames, counted (see _count_repeat).
        self._repeats: dict[str, int] = {}

    # --- wiring ----------------------------------------------------------------------------

    def attach_upstream(self, upstream: CsmsLeg) -> None:
        self.upstream = upstream

    def attach_offline(self, offline: OfflineRelay) -> None:
        self.offline = offline

    @property
    def relaying_live(self) -> bool:
        """Charger CALLs go straight to the CSMS (no outage, nothing waiting for replay)."""
        return (
            self.upstream is not None
            and self.upstream.connected
            and (self.offline is None or not self.offline.holds_traffic)
        )

    # --- frames from the charger -----------------------------------------------------------

    async def on_charger_frame(self, raw: str | bytes) -> None:
        if len(raw) > self.config.max_frame_bytes:
            await self._refuse_oversized(raw)
            return
        head = frame_head(raw)
        if head is None:
            await self._charger_unparsed(raw)
            return
        message_type, unique_id, action = head
        if message_type == CALL:
            await self._charger_call(raw, unique_id, action)
        else:
            await self._charger_answer(raw, message_type, unique_id)

    async def _charger_call(self, raw: str | bytes, unique_id: str, action: str | None) -> None:
        call = None
        if action is None or action in _OBSERVED_CHARGER_CALLS or action in _OBSERVED_CHARGER_EXCHANGES or (
            self.offline is not None and self.offline.needs_parsed(action)
        ):
            call = self._parse(raw)
            if not isinstance(call, Call):
                if not self.relaying_live and self.offline is not None:
                    # Nobody upstream to judge it: LinkRay answers with the CALLERROR itself.
                    await self.offline.on_charger_call(raw, None, unique_id, action)
                else:
                    await self._charger_unparsed(raw)
                return
            action = call.action
        if call is not None and action in _OBSERVED_CHARGER_CALLS:
            self._observe(observe.observe_charger_call, call)
        else:
            self.state.last_seen_at = self._clock()
        if not self.relaying_live:
            if self.offline is not None:
                await self.offline.on_charger_call(raw, call, unique_id, action)
            else:
                self.journal.record(CHARGER_TO_CSMS, self.charge_box_id, CALL, unique_id, action, raw)
                logger.warning("csms_unavailable_call_dropped charge_box_id=%s action=%s", self.charge_box_id, action)
            return
        if self.offline is not None and call is not None:
            raw = self.offline.rewrite_to_csms(call)
        self._remember_pending(unique_id, _Pending(action, call, raw, self._loop.time()))
        self.journal.record(CHARGER_TO_CSMS, self.charge_box_id, CALL, unique_id, action, raw)
        if not await self.upstream.send(raw):
            # The leg dropped under us: unless csms_down() already took it over, the CALL is
            # now the outage's to handle.
            if self._pending.pop(unique_id, None) is not None and self.offline is not None:
                await self.offline.on_charger_call(raw, call, unique_id, action, journal=False)

    def _remember_pending(self, unique_id: str, pending: _Pending) -> None:
        # A well-behaved charger has one CALL in flight; a misbehaving one must not grow this.
        if len(self._pending) >= self.config.pending_limit:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            if self.should_log_repeat("charger_calls_unanswered"):
                logger.warning(
                    "charger_calls_unanswered charge_box_id=%s dropped_unique_id=%s dropped=%d",
                    self.charge_box_id,
                    oldest,
                    self._repeats["charger_calls_unanswered"],
                )
        self._pending[unique_id] = pending

    async def _charger_answer(self, raw: str | bytes, message_type: int, unique_id: str) -> None:
        slot = self._slot
        if slot is not None and slot.unique_id == unique_id:
            self._release_slot(slot)
            if slot.origin == "linkray":
                self.journal.record(CHARGER_TO_LINKRAY, self.charge_box_id, message_type, unique_id, slot.action, raw)
                answer = self._resolve_own(slot, raw)
                if slot.call is not None and slot.action in _OBSERVED_LINKRAY_EXCHANGES and answer is not None:
                    self._observe(observe.observe_linkray_exchange, slot.call, answer)
            else:
                self.journal.record(CHARGER_TO_CSMS, self.charge_box_id, message_type, unique_id, slot.action, raw)
                if slot.call is not None and slot.action in _OBSERVED_CSMS_EXCHANGES:
                    answer = self._parse(raw)
                    if isinstance(answer, CallResult | CallError):
                        self._observe(observe.observe_csms_exchange, slot.call, answer)
                await self._to_csms(raw, slot.action)
            await self._pump()
            return
        if unique_id.startswith(self._own_prefix):
            self.journal.record(CHARGER_TO_LINKRAY, self.charge_box_id, message_type, unique_id, None, raw)
            logger.info("late_answer_dropped charge_box_id=%s unique_id=%s", self.charge_box_id, unique_id)
            return
        # A late answer to a CSMS CALL that timed out here, or one we never saw: the CSMS is
        # the only party that can make sense of it.
        self.journal.record(CHARGER_TO_CSMS, self.charge_box_id, message_type, unique_id, None, raw)
        await self._to_csms(raw, None)

    async def _to_csms(self, raw: str | bytes, action: str | None) -> None:
        if self.upstream is None or not self.upstream.connected:
            logger.info("answer_for_absent_csms_dropped charge_box_id=%s action=%s", self.charge_box_id, action)
            return
        await self.upstream.send(raw)

    async def _charger_unparsed(self, raw: str | bytes) -> None:
        # Not understood, still relayed: the CSMS decides what to make of it.
        self.journal.record(CHARGER_TO_CSMS, self.charge_box_id, None, None, None, raw)
        if self.should_log_repeat("frame_unparsed"):
            logger.warning(
                "frame_unparsed charge_box_id=%s direction=charger count=%d frame=%.120r",
                self.charge_box_id,
                self._repeats["frame_unparsed"],
                raw,
            )
        await self._to_csms(raw, None)

    async def _refuse_oversized(self, raw: str | bytes) -> None:
        head = frame_head(raw[:200])
        # The journal keeps what came in, cut to its first kilobyte.
        marker = f"...[oversized: {len(raw)} bytes, first {_OVERSIZED_KEPT} kept]"
        kept = raw[:_OVERSIZED_KEPT] + (marker.encode() if isinstance(raw, bytes) else marker)
        self.journal.record(
            CHARGER_TO_LINKRAY, self.charge_box_id, head[0] if head else None, head[1] if head else None, head[2] if head else None, kept
        )
        logger.warning(
            "frame_rejected charge_box_id=%s code=FormationViolation reason=oversized size=%d limit=%d",
            self.charge_box_id,
            len(raw),
            self.config.max_frame_bytes,
        )
        if head is not None and head[0] == CALL:
            error = build_call_error(
                head[1], "FormationViolation", f"frame of {len(raw)} bytes exceeds {self.config.max_frame_bytes}"
            )
            self.journal.record(LINKRAY_TO_CHARGER, self.charge_box_id, CALLERROR, head[1], head[2], error.raw)
            await self._charger.send_frame(error.raw)

    # --- frames from the CSMS --------------------------------------------------------------

    async def on_csms_frame(self, raw: str | bytes) -> None:
        if len(raw) > self.config.max_frame_bytes:
            logger.warning(
                "frame_rejected charge_box_id=%s code=FormationViolation reason=oversized direction=csms size=%d",
                self.charge_box_id,
                len(raw),
            )
            return
        head = frame_head(raw)
        if head is None:
            self.journal.record(CSMS_TO_CHARGER, self.charge_box_id, None, None, None, raw)
            logger.warning("frame_unparsed charge_box_id=%s direction=csms frame=%.120r", self.charge_box_id, raw)
            await self._charger.send_frame(raw)
            return
        message_type, unique_id, action = head
        if message_type == CALL:
            await self._csms_call(raw, unique_id, action)
            return
        if self.offline is not None and self.offline.claims_answer(unique_id):
            self.journal.record(CSMS_TO_LINKRAY, self.charge_box_id, message_type, unique_id, None, raw)
            await self.offline.on_csms_answer(raw, unique_id)
            return
        pending = self._pending.pop(unique_id, None)
        if pending is not None:
            RELAY_ROUND_TRIP.observe(self._loop.time() - pending.sent_at)
        self.journal.record(
            CSMS_TO_CHARGER, self.charge_box_id, message_type, unique_id, pending.action if pending else None, raw
        )
        if pending is not None and pending.call is not None and pending.action in _OBSERVED_CHARGER_EXCHANGES:
            answer = self._parse(raw)
            if isinstance(answer, CallResult | CallError):
                self._observe(observe.observe_charger_exchange, pending.call, answer)
        await self._charger.send_frame(raw)

    async def _csms_call(self, raw: str | bytes, unique_id: str, action: str | None) -> None:
        call = None
        if action is None or action in _OBSERVED_CSMS_EXCHANGES or (
            self.offline is not None and self.offline.maps_transactions(action)
        ):
            parsed = self._parse(raw)
            if isinstance(parsed, Call):
                call = parsed
                action = call.action
                if self.offline is not None:
                    raw = self.offline.rewrite_to_charger(call)
        outbound = _Outbound("csms", call, unique_id, action or "?", raw, self.config.call_timeout_s)
        await self._to_charger_slot(outbound)

    # --- LinkRay's own CALLs ---------------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """Send a CALL of LinkRay's own to the charger and return the CALLRESULT payload.

        Raises CallErrorReceived, CallTimedOut or ChargerNotConnected. The answer never
        reaches the CSMS.
        """
        if self.closed:
            raise ChargerNotConnected(self.charge_box_id)
        unique_id = f"{self._own_prefix}{next(self._own_ids)}"
        call = build_call(unique_id, action, payload)
        outbound = _Outbound(
            "linkray",
            call,
            unique_id,
            action,
            call.raw,
            timeout_s or self.config.call_timeout_s,
            future=self._loop.create_future(),
        )
        await self._to_charger_slot(outbound)
        return await outbound.future

    # --- the slot towards the charger ------------------------------------------------------

    async def _to_charger_slot(self, outbound: _Outbound) -> None:
        if self._slot is None and not self._queue:
            await self._send_outbound(outbound)
            return
        self._queue.append(outbound)
        logger.info(
            "call_queued charge_box_id=%s origin=%s action=%s behind=%s waiting=%d",
            self.charge_box_id,
            outbound.origin,
            outbound.action,
            self._slot.action if self._slot else "-",
            len(self._queue),
        )

    async def _send_outbound(self, outbound: _Outbound) -> None:
        self._slot = outbound
        outbound.timer = self._loop.call_later(outbound.timeout_s, self._slot_timed_out, outbound)
        direction = LINKRAY_TO_CHARGER if outbound.origin == "linkray" else CSMS_TO_CHARGER
        self.journal.record(direction, self.charge_box_id, CALL, outbound.unique_id, outbound.action, outbound.raw)
        await self._charger.send_frame(outbound.raw)

    async def _pump(self) -> None:
        while self._slot is None and self._queue and not self.closed:
            await self._send_outbound(self._queue.popleft())

    def _release_slot(self, outbound: _Outbound) -> None:
        if outbound.timer is not None:
            outbound.timer.cancel()
        if self._slot is outbound:
            self._slot = None

    def _slot_timed_out(self, outbound: _Outbound) -> None:
        if self._slot is not outbound:
            return
        self._slot = None
        logger.warning(
            "call_timed_out charge_box_id=%s origin=%s action=%s unique_id=%s",
            self.charge_box_id,
            outbound.origin,
            outbound.action,
            outbound.unique_id,
        )
        # A late answer to a CSMS CALL still goes back to the CSMS (see _charger_answer).
        if outbound.future is not None and not outbound.future.done():
            outbound.future.set_exception(CallTimedOut(f"{outbound.action} to {self.charge_box_id}"))
        if self._queue:
            asyncio.ensure_future(self._pump())

    def _resolve_own(self, outbound: _Outbound, raw: str | bytes) -> CallResult | CallError | None:
        answer = self._parse(raw)
        if not isinstance(answer, CallResult | CallError):
            answer = None
        future = outbound.future
        if future is None or future.done():
            return answer
        if isinstance(answer, CallResult):
            future.set_result(answer.payload)
        elif isinstance(answer, CallError):
            future.set_exception(CallErrorReceived(answer.error_code, answer.error_description, answer.error_details))
        else:
            future.set_exception(CallErrorReceived("FormationViolation", "charger answered with an unreadable frame", {}))
        return answer

    # --- lifecycle ---------------------------------------------------------------------------

    async def close(self, code: int = 1000) -> None:
        """The charger is gone (or LinkRay stops, code 1001): fail LinkRay's waiting CALLs and
        close the CSMS leg with `code`."""
        if self.closed:
            return
        self.closed = True
        outbounds = ([self._slot] if self._slot else []) + list(self._queue)
        self._slot = None
        self._queue.clear()
        for outbound in outbounds:
            if outbound.timer is not None:
                outbound.timer.cancel()
            if outbound.future is not None and not outbound.future.done():
                outbound.future.set_exception(ChargerNotConnected(self.charge_box_id))
        if self.offline is not None:
            await self.offline.on_session_closed()
        if self.upstream is not None:
            await self.upstream.close(code)

    async def close_charger_leg(self, code: int = 1000) -> None:
        await self._charger.close(code)

    async def csms_down(self, reason: str) -> None:
        """The CSMS leg dropped; charger CALLs still waiting for it become the outage's."""
        pending, self._pending = self._pending, {}
        if self.offline is not None:
            await self.offline.on_csms_down(list(pending.items()))
        elif pending:
            logger.warning("csms_answers_lost charge_box_id=%s count=%d", self.charge_box_id, len(pending))

    async def csms_up(self) -> None:
        if self.offline is not None:
            await self.offline.on_csms_up()

    # --- helpers ---------------------------------------------------------------------------

    async def send_to_charger(self, direction: str, message_type: int, unique_id: str, action: str | None, raw: str) -> None:
        self.journal.record(direction, self.charge_box_id, message_type, unique_id, action, raw)
        await self._charger.send_frame(raw)

    def observe_local_exchange(self, call: Call, answer: CallResult) -> None:
        """A charger CALL LinkRay answered itself (CSMS away): the model follows it, but the
        authorization cache learns only from the CSMS, never from LinkRay's own decisions."""
        self._observe(observe.observe_local_charger_exchange, call, answer, answered_locally=True)

    def _observe(self, observer, *args, answered_locally: bool = False) -> None:
        try:
            effects = observer(self.state, *args, self._clock())
        except Exception:
            # The model learns from traffic but must never stand in its way.
            logger.exception("observe_failed charge_box_id=%s", self.charge_box_id)
            return
        self.hooks.state_changed(self)
        if answered_locally:
            effects = [effect for effect in effects if not isinstance(effect, observe.AuthorizationSeen)]
        if effects:
            for effect in effects:
                if isinstance(effect, observe.AuthorizationKeyChanged):
                    self._adopt_authorization_key(effect.key_hex)
            self.hooks.effects(self, effects)

    def _adopt_authorization_key(self, key_hex: str) -> None:
        # The CSMS will expect the new password on the next connection; the charger uses it
        # when it reconnects, and so must LinkRay's own upstream reconnects meanwhile.
        if self.upstream is None:
            return
        # The whitepaper has the charger use the key's bytes as password; some firmware uses the
        # hex text itself. Try the former first and fall back to the latter if refused.
        candidates = [header for header in (basic_auth_header(self.charge_box_id, key_hex), plain_basic_auth_header(self.charge_box_id, key_hex)) if header]
        if candidates:
            self.upstream.update_authorization(*candidates)
            logger.info("authorization_key_adopted charge_box_id=%s", self.charge_box_id)

    def _parse(self, raw: str | bytes):
        try:
            return parse_frame(raw)
        except FrameError as error:
            if self.should_log_repeat("frame_invalid"):
                logger.warning(
                    "frame_unparsed charge_box_id=%s code=%s reason=%s count=%d",
                    self.charge_box_id,
                    error.code,
                    error.reason,
                    self._repeats["frame_invalid"],
                )
            return None

    def should_log_repeat(self, event: str) -> bool:
        """Count one more `event` of this charger; True when it should be logged: the first
        few, then every 100th (each logged line carries the count), so a charger sending
        garbage cannot flood the log. Every frame is still in the journal."""
        count = self._repeats.get(event, 0) + 1
        self._repeats[event] = count
        return count <= _LOGGED_REPEATS or count % 100 == 0

    def repeats(self, event: str) -> int:
        return self._repeats.get(event, 0)

    def now(self) -> datetime:
        return self._clock()
