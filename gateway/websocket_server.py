"""The charger-facing server, as `manage.py serve` runs it: daphne with what a restart storm needs.

- The listening socket is made here, not by Twisted: its listen queue is
  `LINKRAY_LISTEN_BACKLOG` (Twisted's is 50, which a 1,000-charger burst overflowed), and with
  `reuse_port` several server processes share one port (SO_REUSEPORT, the kernel spreads the
  connections). daphne adopts it through a `fd:` endpoint.
- A charger can be refused with a real HTTP answer that it will retry (503 with Retry-After):
  daphne knows only 403 for a socket closed before it is accepted, so the ASGI "websocket
  denial response" extension (`websocket.http.response.start` / `.body`) is added here.
- The process may hold two sockets per charger: the soft open-files limit is raised to the
  hard one at start.
- A frame budget per charger (gateway.throttle): a charger sending faster than
  LINKRAY_CHARGER_MAX_FRAMES_PER_S / _BYTES_PER_S is not read until its budget refills (TCP
  back-pressure), so a flood costs the others nothing and queues nothing in memory.
- A graceful stop: on SIGTERM every charger and CSMS leg is closed with 1001 ("going away")
  and a summary is logged before daphne cancels the consumers.
"""

from __future__ import annotations

import asyncio
import http
import logging
import resource
import socket
import time

import daphne.server
from autobahn.websocket.types import ConnectionDeny
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString

from gateway.throttle import FrameBudget, FrameBudgetConfig

logger = logging.getLogger(__name__)

DENIAL_EXTENSION = "websocket.http.response"  # also named in gateway.consumers


def raise_open_files_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logger.warning("open_files_limit_not_raised soft=%s hard=%s error=%s", soft, hard, error)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def listening_socket(host: str, port: int, *, backlog: int, reuse_port: bool) -> socket.socket:
    """A bound, listening TCP socket for daphne to adopt."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


_ADOPTED = "linkray-adopted:"


def adopted_endpoint(sock: socket.socket) -> str:
    """daphne's endpoint description for a socket made by listening_socket (see ChargerServer)."""
    return f"{_ADOPTED}{sock.fileno()}:{int(sock.family)}"


def _endpoint_from_string(reactor, description: str):
    if description.startswith(_ADOPTED):
        fileno, family = description.removeprefix(_ADOPTED).split(":")
        return AdoptedStreamServerEndpoint(reactor, int(fileno), socket.AddressFamily(int(family)))
    return serverFromString(reactor, description)


_budget_config: FrameBudgetConfig | None = None


def budget_config() -> FrameBudgetConfig:
    global _budget_config
    if _budget_config is None:
        from django.conf import settings

        frames, size = settings.LINKRAY_CHARGER_MAX_FRAMES_PER_S, settings.LINKRAY_CHARGER_MAX_BYTES_PER_S
        # Bursts: three seconds of frames; four of bytes, and at least one frame of the largest
        # size LinkRay accepts.
        _budget_config = FrameBudgetConfig(frames, frames * 3, size, max(size * 4, settings.LINKRAY_MAX_FRAME_BYTES))
    return _budget_config


class ChargerWebSocketProtocol(WebSocketProtocol):
    """daphne's websocket protocol, plus the denial response (an HTTP status and headers of the
    application's choosing before the socket is accepted: 503 + Retry-After under load, 404 for
    a wrong path, the CSMS's 401), the frame budget and the 1001 close on shutdown."""

    _denial_headers: list[tuple[str, str]] = []
    _denial_status: int | None = None
    _budget: FrameBudget | None = None
    _reading_paused = False
    _throttled = 0

    def onMessage(self, payload, isBinary):  # noqa: N802, N803 (autobahn's names)
        super().onMessage(payload, isBinary)
        budget = self._budget
        now = time.monotonic()
        if budget is None:
            budget = self._budget = FrameBudget(budget_config(), now)
        wait_s = budget.spend(len(payload), now)
        if wait_s > 0 and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
            reactor.callLater(wait_s, self._resume_reading)
            self._throttled += 1
            if self._throttled <= 3 or self._throttled % 100 == 0:
                from gateway.consumers import charge_box_id_from_scope

                identity = charge_box_id_from_scope({"raw_path": getattr(self, "path", b"")})
                logger.warning(
                    "charger_throttled charge_box_id=%s pause_s=%.2f times=%d",
                    identity[0] if identity else "-",
                    wait_s,
                    self._throttled,
                )

    def _resume_reading(self):
        self._reading_paused = False
        if self.state != self.STATE_CLOSED:
            self.transport.resumeProducing()

    def serverClose(self, code=None):  # noqa: N802 (autobahn's name)
        # autobahn lets an application send only 1000 or 3000-4999; 1001 "going away" is what
        # a server that shuts down sends, so it goes out as the protocol's own close frame.
        if code == 1001:
            self.sendCloseFrame(code=1001, isReply=False)
        else:
            super().serverClose(code)

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.send" and self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            # The charger is going or gone (its disconnect is on its way to the consumer): a
            # frame for it is dropped, not raised into whoever relayed it (the CSMS reader).
            logger.debug("charger_send_after_close_dropped path=%s", getattr(self, "path", b"").decode("latin-1"))
            return
        if kind == "websocket.http.response.start":
            if self.state == self.STATE_CONNECTING and hasattr(self, "handshake_deferred"):
                self._denial_status = int(message.get("status", 403))
                self._denial_headers = [
                    (name.decode("latin-1"), value.decode("latin-1")) for name, value in message.get("headers", [])
                ]
            return
        if kind == "websocket.http.response.body":
            if message.get("more_body"):
                return
            if self._denial_status is not None and hasattr(self, "handshake_deferred"):
                self._deny(self._denial_status)
            return
        super().handle_reply(message)

    def _deny(self, status: int) -> None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Refused"
        self.handshake_deferred.errback(ConnectionDeny(code=status, reason=phrase))
        del self.handshake_deferred
        self.server.protocol_disconnected(self)

    def failHandshake(self, reason, code=400, responseHeaders=None):  # noqa: N802 (autobahn's name)
        headers = list(responseHeaders or [])
        if self._denial_status == code:
            headers.extend(self._denial_headers)
        super().failHandshake(reason, code, headers or None)


class ChargerServer(Server):
    """daphne's Server, whose websocket connections use ChargerWebSocketProtocol and tell the
    application (through the scope's extensions) that they can send a denial response; on
    SIGTERM every leg is closed with 1001 before daphne cancels the consumers."""

    shutdown_close_code = 1001

    def run(self):
        # ws_factory is built in run(); connections are accepted only once the reactor runs,
        # which is after ready_callable: swap the protocol there. The listening socket is
        # LinkRay's own (backlog, SO_REUSEPORT); this Twisted has no string endpoint adopting a
        # descriptor, so daphne's endpoint parser learns one for the length of its set-up.
        ready = self.ready_callable

        def on_ready():
            daphne.server.serverFromString = serverFromString
            self.ws_factory.protocol = ChargerWebSocketProtocol
            if ready is not None:
                ready()

        self.ready_callable = on_ready
        daphne.server.serverFromString = _endpoint_from_string
        try:
            super().run()
        finally:
            daphne.server.serverFromString = serverFromString

    def create_application(self, protocol, scope):
        if isinstance(protocol, ChargerWebSocketProtocol):
            scope = {**scope, "extensions": {**scope.get("extensions", {}), DENIAL_EXTENSION: {}}}
        return super().create_application(protocol, scope)

    def kill_all_applications(self):
        from gateway.runtime import runtime

        graceful = defer.Deferred.fromFuture(asyncio.ensure_future(runtime.shutdown(code=self.shutdown_close_code)))
        graceful.addErrback(lambda failure: logger.error("shutdown_failed error=%s", failure.getErrorMessage()))
        graceful.addBoth(lambda _: super(ChargerServer, self).kill_all_applications())
        return graceful
