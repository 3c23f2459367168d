"""ChargerConsumer: one charger's websocket, wired to its ChargerSession.

The consumer handles `websocket.receive` itself and hands the raw text to the session: no
channel-layer hop and no per-message handler lookup on the relay path. The channel layer is
used only to let other processes send LinkRay CALLs to this charger (scale-out).
"""

from __future__ import annotations

import asyncio
import logging
import random
import resource
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import unquote

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from gateway import services
from gateway.connection_limits import ConnectionLimits, charger_capacity, retry_after_s
from gateway.events import charger_group
from gateway.offline_runtime import attach_offline
from gateway.runtime import runtime
from gateway.session import (
    CallErrorReceived,
    CallTimedOut,
    ChargerNotConnected,
    ChargerSession,
    SessionConfig,
)
from gateway.upstream import ConnectGate, UpstreamConfig, UpstreamLink, UpstreamRejected, charger_url

logger = logging.getLogger(__name__)

# channels-redis forgets group members after a day; long-lived chargers re-join well before.
_GROUP_REFRESH_S = 3600
# The ASGI "websocket denial response" extension (gateway.websocket_server adds it to daphne).
_DENIAL_EXTENSION = "websocket.http.response"


class RetryLater(Exception):
    """Admission could not finish in time: the charger gets HTTP 503 with Retry-After."""

    def __init__(self, reason: str, **fields):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


# Process-wide, built on first use: sockets per client address and in all (see
# gateway.connection_limits), and the gate the CSMS legs' handshakes pass through.
_limits: ConnectionLimits | None = None
_gate: tuple[asyncio.AbstractEventLoop, ConnectGate] | None = None
_retry_rng = random.Random()


def connection_limits() -> ConnectionLimits:
    global _limits
    if _limits is None:
        open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        _limits = ConnectionLimits(
            max_per_address=settings.LINKRAY_MAX_CONNECTIONS_PER_ADDRESS, max_total=charger_capacity(open_files)
        )
        logger.info(
            "connection_limits max_per_address=%s max_total=%s", _limits.max_per_address, _limits.max_total
        )
    return _limits


# Channel-layer bookkeeping (group_add, group_discard, the "replaced" notice) in flight at once.
# channels-redis takes a pooled Redis connection per call and redis-py's pool refuses beyond 100
# (MaxConnectionsError): a storm of 1,000 chargers connecting or leaving at once lost its group
# membership that way. The blocking pop that serves every charger's channel is one connection.
_LAYER_CALLS_AT_ONCE = 32
_layer_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None


def channel_layer_slots() -> asyncio.Semaphore:
    global _layer_slots
    loop = asyncio.get_running_loop()
    if _layer_slots is None or _layer_slots[0] is not loop:
        _layer_slots = (loop, asyncio.Semaphore(_LAYER_CALLS_AT_ONCE))
    return _layer_slots[1]


def csms_connect_gate() -> ConnectGate:
    global _gate
    loop = asyncio.get_running_loop()
    if _gate is None or _gate[0] is not loop:
        _gate = (loop, ConnectGate(settings.LINKRAY_CSMS_CONNECT_CONCURRENCY, settings.LINKRAY_CSMS_CONNECT_JITTER_S))
    return _gate[1]


def charge_box_id_from_scope(scope) -> tuple[str, str] | None:
    """(charge_box_id, the path segment as the charger escaped it), or None when the path is
    not `/ocpp/<chargeBoxId>` (optionally with one trailing slash). The raw path decides, so
    `/ocpp/a%2Fb` is charger `a/b` while `/ocpp/a/b` is no charger at all."""
    raw_path = scope.get("raw_path")
    if raw_path:
        path = raw_path.decode("latin-1").split("?", 1)[0]
    else:
        path = scope["path"]
    prefix, _, segment = path.partition("/ocpp/")
    if prefix or not path.startswith("/ocpp/"):
        return None
    if segment.endswith("/"):
        segment = segment[:-1]
    if not segment or "/" in segment:
        return None
    return unquote(segment), segment


class ChargerConsumer(AsyncConsumer):
    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.session: ChargerSession | None = None
        self._layer_task: asyncio.Task | None = None
        self._connecting: asyncio.Future | None = None
        self._gone: asyncio.Future | None = None
        self._refusal_status = 403
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        client = scope.get("client")
        address = str(client[0]) if client else "-"
        limits = connection_limits()
        refusal = limits.try_open(address)
        if refusal is not None:
            reason = "too_many_connections_from_address" if refusal.reason == "address_limit" else "at_capacity"
            await self._retry_later(RetryLater(reason, address=address, open=refusal.open_count, limit=refusal.limit))
            return
        try:
            await self._serve(receive)
        finally:
            limits.release(address)

    async def _serve(self, receive) -> None:
        started = asyncio.get_running_loop().time()
        # Before the accept only a disconnect can arrive: watching for it lets an admission
        # whose charger has already given up (its own handshake timeout, in a storm) stop
        # before opening a CSMS leg for nobody.
        self._gone = asyncio.ensure_future(receive())
        try:
            admitted = await self._admit(started)
        except RetryLater as refusal:
            self._gone.cancel()
            await self._retry_later(refusal)
            return
        except Exception:
            logger.exception("charger_admission_failed path=%s", self.scope.get("path"))
            admitted = False
            self._refusal_status = 500
        if not admitted:
            self._gone.cancel()
            await self._refuse(self._refusal_status)
            return
        session = self.session
        first, self._gone = self._gone, None
        try:
            on_frame = session.on_charger_frame
            while True:
                if first is not None:
                    message, first = await first, None
                else:
                    message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    try:
                        await on_frame(text if text is not None else message.get("bytes") or b"")
                    except Exception:
                        # One bad frame (or a bug it triggers) must not end this charger's
                        # connection, let alone another's.
                        logger.exception("charger_frame_failed charge_box_id=%s", session.charge_box_id)
                elif kind == "websocket.disconnect":
                    if message.get("code") == 1007:
                        logger.warning(
                            "frame_rejected charge_box_id=%s code=FormationViolation reason=invalid_utf8_text "
                            "connection_closed=1007",
                            session.charge_box_id,
                        )
                    elif message.get("code") == 1009:
                        logger.warning(
                            "frame_rejected charge_box_id=%s code=FormationViolation reason=oversized "
                            "beyond_hard_limit=%d connection_closed=1009",
                            session.charge_box_id,
                            settings.LINKRAY_WEBSOCKET_HARD_LIMIT_BYTES,
                        )
                    logger.info("charger_disconnected charge_box_id=%s code=%s", session.charge_box_id, message.get("code"))
                    break
        finally:
            await self._teardown()

    # --- connect ---------------------------------------------------------------------------

    async def _retry_later(self, refusal: RetryLater) -> None:
        """Refuse with HTTP 503 and Retry-After (a charger retries that), logged with the reason."""
        identity = charge_box_id_from_scope(self.scope)
        charge_box_id = identity[0] if identity else ""
        retry_after = retry_after_s(settings.LINKRAY_RETRY_AFTER_S, _retry_rng)
        fields = "".join(f" {name}={value}" for name, value in refusal.fields.items())
        logger.warning(
            "charger_refused charge_box_id=%s reason=%s%s status=503 retry_after_s=%s",
            charge_box_id or "-",
            refusal.reason,
            fields,
            retry_after,
        )
        if _DENIAL_EXTENSION in self.scope.get("extensions", {}):
            await self.base_send(
                {
                    "type": "websocket.http.response.start",
                    "status": 503,
                    "headers": [(b"retry-after", str(retry_after).encode()), (b"content-length", b"0")],
                }
            )
            await self.base_send({"type": "websocket.http.response.body", "body": b""})
        else:
            await self.base_send({"type": "websocket.close", "code": 1013})  # "try again later"

    async def _still_wanted(self, started: float, stage: str, charge_box_id: str, state, now) -> bool:
        """Between admission steps: False if the charger has given up already; RetryLater if the
        admission is past its deadline. Either way its model is put back to not connected."""
        gone = self._gone.done()
        waited_s = asyncio.get_running_loop().time() - started
        late = waited_s > settings.LINKRAY_ADMISSION_TIMEOUT_S
        if not gone and not late:
            return True
        if gone:
            logger.info("charger_gone_during_admission charge_box_id=%s stage=%s", charge_box_id, stage)
        if charge_box_id not in runtime.sessions:  # not when a newer socket of it is already in
            state.charger_connected = False
            await database_sync_to_async(services.record_charger_gone)(charge_box_id, state, now)
        if gone:
            return False
        raise RetryLater("admission_timeout", stage=stage, waited_s=f"{waited_s:.1f}")

    async def _drop_csms_leg(self, session: ChargerSession) -> None:
        if session.upstream is not None:
            if self._connecting is not None:
                self._connecting.cancel()
            await session.upstream.close()

    async def _refuse(self, status: int) -> None:
        """Refuse the handshake with an HTTP status where the server supports the ASGI
        websocket denial response (daphne as `serve` runs it), else with daphne's 403."""
        if _DENIAL_EXTENSION in self.scope.get("extensions", {}):
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Refused"
            await self.base_send({"type": "websocket.http.response.start", "status": status, "headers": []})
            await self.base_send({"type": "websocket.http.response.body", "body": phrase.encode()})
        else:
            await self.base_send({"type": "websocket.close", "code": 1008})

    async def _admit(self, started: float) -> bool:
        peer = self.scope.get("client")
        identity = charge_box_id_from_scope(self.scope)
        if identity is None:
            self._refusal_status = 404
            path = (self.scope.get("raw_path") or b"").decode("latin-1") or self.scope.get("path", "")
            logger.warning("charger_refused reason=wrong_path path=%.200s peer=%s", path, peer)
            return False
        charge_box_id, raw_segment = identity
        if not charge_box_id:
            logger.warning("charger_refused reason=empty_charge_box_id peer=%s", peer)
            return False
        if "ocpp1.6" not in self.scope.get("subprotocols", []):
            logger.warning(
                "charger_refused charge_box_id=%s reason=no_ocpp1.6_subprotocol offered=%s peer=%s",
                charge_box_id,
                ",".join(self.scope.get("subprotocols", [])) or "-",
                peer,
            )
            return False
        now = datetime.now(UTC)
        authorization = _header(self.scope, b"authorization")
        decision = await database_sync_to_async(services.admit_charger)(
            charge_box_id, now, authorization, runtime.process_id
        )
        if not decision.accepted:
            logger.warning("charger_refused charge_box_id=%s reason=%s peer=%s", charge_box_id, decision.reason, peer)
            return False
        if not await self._still_wanted(started, "database", charge_box_id, decision.state, now):
            return False
        session = await self._build_session(charge_box_id, raw_segment, authorization, decision)
        leg = await self._open_csms_leg(session)
        if leg == "refused":
            # The charger sees what the CSMS answered (401 wrong password, 404 unknown id).
            await database_sync_to_async(services.record_charger_gone)(charge_box_id, session.state, now)
            return False
        try:
            if not await self._still_wanted(started, "csms_leg", charge_box_id, session.state, now):
                await self._drop_csms_leg(session)
                return False
        except RetryLater:
            await self._drop_csms_leg(session)
            raise
        self.session = session
        await self.base_send({"type": "websocket.accept", "subprotocol": "ocpp1.6"})
        previous = runtime.register(session)
        if previous is not None:
            logger.info("charger_replaced charge_box_id=%s", charge_box_id)
            await previous.close()
            await previous.close_charger_leg()
        logger.info("charger_connected charge_box_id=%s peer=%s csms=%s", charge_box_id, peer, leg)
        await self._start_csms_leg(session, leg)
        if not settings.LINKRAY_EMBEDDED:
            # A socket of this charger still open in another process (a half-open connection the
            # charger has given up on) is told to close before this one joins the group.
            try:
                async with channel_layer_slots():
                    await get_channel_layer().group_send(
                        charger_group(charge_box_id), {"type": "gateway.replaced", "process_id": runtime.process_id}
                    )
            except Exception as error:
                # The charger is accepted and relayed already: a Redis hiccup here must not
                # undo that (it used to leave the session and its CSMS leg behind).
                logger.warning("channel_layer_replace_notice_failed charge_box_id=%s error=%r", charge_box_id, error)
            self._layer_task = asyncio.create_task(self._serve_channel_layer(session))
        return True

    async def _build_session(self, charge_box_id, raw_segment, authorization, decision) -> ChargerSession:
        state = decision.state
        state.charger_connected = True
        # A new connection starts its CSMS leg afresh: an old "down" (or a charger's first
        # connection, whose model starts "down") must not hide when this outage began.
        state.csms_state, state.csms_down_since = "connecting", None
        session = ChargerSession(
            charge_box_id,
            _ChargerLeg(self.base_send),
            journal=runtime.journal,
            hooks=runtime,
            config=session_config(),
            state=state,
        )
        base_url = decision.upstream_url or settings.LINKRAY_CSMS_URL
        if base_url:
            session.attach_upstream(
                UpstreamLink(
                    upstream_config(charger_url(base_url, raw_segment), authorization),
                    on_frame=session.on_csms_frame,
                    on_up=lambda: self._csms_up(session),
                    on_down=lambda reason: self._csms_down(session, reason),
                    charge_box_id=charge_box_id,
                    gate=csms_connect_gate(),
                    on_refused=lambda status: self._csms_refused(session, status),
                )
            )
        await attach_offline(session)
        return session

    async def _open_csms_leg(self, session: ChargerSession) -> str:
        """First handshake of the CSMS leg: "up", "connecting" (still trying in the background),
        "down", "refused" (the CSMS refused: so is the charger) or "not_configured"."""
        upstream = session.upstream
        if upstream is None:
            return "not_configured"
        self._connecting = asyncio.ensure_future(upstream.connect(start_reading=False))
        try:
            # Wait for the CSMS's verdict before accepting (a charger it refuses is refused),
            # but not so long that the charger's own handshake gives up on a silent network.
            await asyncio.wait_for(asyncio.shield(self._connecting), settings.LINKRAY_CSMS_ADMIT_WAIT_S)
            return "up"
        except asyncio.TimeoutError:
            logger.warning("csms_slow charge_box_id=%s action=accepting_charger_while_connecting", session.charge_box_id)
            return "connecting"
        except UpstreamRejected as error:
            logger.warning(
                "charger_refused charge_box_id=%s reason=csms_refused status=%s", session.charge_box_id, error.status
            )
            self._refusal_status = error.status if 400 <= error.status <= 599 else 403
            session.state.csms_refused = f"HTTP {error.status}"  # kept with the charger's model
            await upstream.close()
            return "refused"
        except Exception as error:
            logger.warning(
                "csms_unreachable charge_box_id=%s error=%s", session.charge_box_id, str(error) or type(error).__name__
            )
            return "down"

    async def _start_csms_leg(self, session: ChargerSession, leg: str) -> None:
        """Once the charger is accepted: relay live, keep connecting, or reconnect later."""
        if leg == "not_configured":
            self._set_csms_state(session, "not_configured")
        elif leg == "up":
            self._set_csms_state(session, "connected")
            session.upstream.start_reading()
            await session.csms_up()
        elif leg == "connecting":
            self._set_csms_state(session, "connecting")
            self._connecting.add_done_callback(lambda task: asyncio.ensure_future(self._first_connect_done(session, task)))
        else:
            self._set_csms_state(session, "down")
            session.upstream.start_reconnecting()

    async def _first_connect_done(self, session: ChargerSession, task: asyncio.Future) -> None:
        """The CSMS leg's first handshake finished after the charger was accepted."""
        if session.closed or task.cancelled():
            return
        error = task.exception()
        if error is None:
            self._set_csms_state(session, "connected")
            session.upstream.start_reading()
            await session.csms_up()
        elif isinstance(error, UpstreamRejected):
            logger.warning(
                "charger_refused charge_box_id=%s reason=csms_refused status=%s", session.charge_box_id, error.status
            )
            session.state.csms_refused = f"HTTP {error.status}"
            # Autobahn allows a server only 1000 or 3000-4999; 4003 reads as "forbidden".
            await session.close_charger_leg(4003)
        else:
            logger.warning(
                "csms_unreachable charge_box_id=%s error=%s", session.charge_box_id, str(error) or type(error).__name__
            )
            self._set_csms_state(session, "down")
            session.upstream.start_reconnecting()

    def _set_csms_state(self, session: ChargerSession, csms_state: str) -> None:
        state = session.state
        if csms_state == "down":
            if state.csms_state != "down" or state.csms_down_since is None:
                state.csms_down_since = session.now()
        else:
            state.csms_down_since = None
        if csms_state == "connected":
            state.csms_refused = ""
        state.csms_state = csms_state
        runtime.state_changed(session)

    async def _csms_refused(self, session: ChargerSession, status: int) -> None:
        """The CSMS answered a reconnection with an HTTP error (a charger with a wrong
        password that connected during an outage): the admission rule applies late. The
        charger is closed; its queue stays, shown to the operator with the reason."""
        state = session.state
        state.csms_refused = f"HTTP {status}"
        backlog = session.offline.backlog if session.offline is not None else 0
        logger.warning(
            "charger_refused charge_box_id=%s reason=csms_refused status=%s when=reconnect queued=%d",
            session.charge_box_id,
            status,
            backlog,
        )
        self._set_csms_state(session, "down")
        await session.close()
        # Accepted sockets cannot carry an HTTP status; 4003 reads as "forbidden".
        await session.close_charger_leg(4003)

    async def _csms_up(self, session: ChargerSession) -> None:
        self._set_csms_state(session, "connected")
        await session.csms_up()

    async def _csms_down(self, session: ChargerSession, reason: str) -> None:
        self._set_csms_state(session, "down")
        await session.csms_down(reason)

    # --- disconnect ------------------------------------------------------------------------

    async def _teardown(self) -> None:
        session = self.session
        if session is None:
            return
        if self._layer_task is not None:
            self._layer_task.cancel()
        try:
            await session.close()
        finally:
            if runtime.sessions.get(session.charge_box_id) is session:
                runtime.unregister(session)
                session.state.charger_connected = False
                # The CSMS leg closed with the charger: a state flush still pending for this
                # session must not write the leg back as connected (a green badge on an
                # offline charger).
                session.state.csms_state = "closed"
                session.state.csms_down_since = None
                await database_sync_to_async(services.record_charger_gone)(
                    session.charge_box_id, session.state, datetime.now(UTC)
                )

    # --- other processes -------------------------------------------------------------------

    async def _serve_channel_layer(self, session: ChargerSession) -> None:
        layer = get_channel_layer()
        channel_name = await layer.new_channel()
        group = charger_group(session.charge_box_id)
        loop = asyncio.get_running_loop()
        receiving = None
        refresh_at = 0.0
        try:
            while True:
                try:
                    if loop.time() >= refresh_at:
                        async with channel_layer_slots():
                            await layer.group_add(group, channel_name)
                        refresh_at = loop.time() + _GROUP_REFRESH_S
                    if receiving is None:
                        receiving = asyncio.ensure_future(layer.receive(channel_name))
                    done, _ = await asyncio.wait({receiving}, timeout=max(0.0, refresh_at - loop.time()))
                    if not done:
                        continue
                    message, receiving = receiving.result(), None
                    if message.get("type") == "gateway.call":
                        asyncio.ensure_future(self._answer_remote_call(layer, session, message))
                    elif message.get("type") == "gateway.replaced":
                        logger.info("charger_replaced charge_box_id=%s by=%s", session.charge_box_id, message.get("process_id"))
                        await session.close()
                        await session.close_charger_leg(4000)  # 3000-4999: "replaced by a newer connection"
                        return
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    # Redis hiccup: this charger must stay reachable, so try again shortly.
                    receiving = None
                    refresh_at = 0.0
                    logger.warning(
                        "channel_layer_retry charge_box_id=%s error=%s", session.charge_box_id, str(error) or type(error).__name__
                    )
                    await asyncio.sleep(1.0)
        finally:
            if receiving is not None:
                receiving.cancel()
            try:
                async with channel_layer_slots():
                    await layer.group_discard(group, channel_name)
            except Exception as error:
                logger.warning(
                    "channel_layer_discard_failed charge_box_id=%s error=%s",
                    session.charge_box_id,
                    repr(error),
                )

    async def _answer_remote_call(self, layer, session: ChargerSession, message) -> None:
        reply = {"type": "gateway.call.reply", "request_id": message.get("request_id", "")}
        try:
            payload = await session.call(message["action"], message.get("payload") or {}, timeout_s=message.get("timeout_s"))
            reply.update(ok=True, payload=payload)
        except CallErrorReceived as error:
            reply.update(ok=False, error="call_error", error_code=error.error_code, description=error.description)
        except CallTimedOut as error:
            reply.update(ok=False, error="timeout", description=str(error))
        except ChargerNotConnected as error:
            reply.update(ok=False, error="not_connected", description=str(error))
        except Exception as error:
            logger.exception("remote_call_failed charge_box_id=%s", session.charge_box_id)
            reply.update(ok=False, error="internal", description=str(error))
        try:
            await layer.send(message["reply_channel"], reply)
        except Exception:
            logger.exception("remote_call_reply_failed charge_box_id=%s", session.charge_box_id)


def session_config() -> SessionConfig:
    return SessionConfig(call_timeout_s=settings.LINKRAY_CALL_TIMEOUT_S, max_frame_bytes=settings.LINKRAY_MAX_FRAME_BYTES)


def upstream_config(url: str, authorization: str | None) -> UpstreamConfig:
    return UpstreamConfig(
        url=url,
        authorization=authorization,
        ca_bundle=settings.LINKRAY_CSMS_CA_BUNDLE,
        compression=settings.LINKRAY_CSMS_COMPRESSION,
        connect_timeout_s=settings.LINKRAY_CSMS_CONNECT_TIMEOUT_S,
        ping_interval_s=settings.LINKRAY_CSMS_PING_INTERVAL_S,
        max_frame_bytes=settings.LINKRAY_MAX_FRAME_BYTES,
        reconnect_min_s=settings.LINKRAY_CSMS_RECONNECT_MIN_S,
        reconnect_max_s=settings.LINKRAY_CSMS_RECONNECT_MAX_S,
    )


class _ChargerLeg:
    __slots__ = ("_send", "closed")

    def __init__(self, send):
        self._send = send
        self.closed = False

    async def send_frame(self, raw: str | bytes) -> None:
        if self.closed:
            return
        try:
            if isinstance(raw, str):
                await self._send({"type": "websocket.send", "text": raw})
            else:
                await self._send({"type": "websocket.send", "bytes": raw})
        except Exception as error:
            # The socket closed under us (its disconnect is on its way): the frame is lost with
            # it, as on any dropped connection; never an error for whoever relayed it.
            self.closed = True
            logger.info("charger_send_failed error=%s", type(error).__name__)

    async def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
