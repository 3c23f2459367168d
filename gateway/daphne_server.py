"""daphne as `manage.py serve` runs it, with two things LinkRay needs that daphne lacks:

- HTTP status on a refused websocket handshake: the ASGI "websocket.http.response" extension
  (denial response), so a wrong path gets 404 and a charger the CSMS refuses gets the CSMS's
  401 instead of daphne's fixed 403.
- A frame budget per charger (gateway.throttle): a charger sending faster than
  LINKRAY_CHARGER_MAX_FRAMES_PER_S / _BYTES_PER_S is not read until its budget refills (TCP
  back-pressure), so a flood costs the others nothing and queues nothing in memory.
- A graceful stop: on SIGTERM every charger and CSMS leg is closed with 1001 ("going away")
  and a summary is logged before daphne cancels the consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from http import HTTPStatus

from daphne.server import Server  # first: installs Twisted's asyncio reactor
from daphne.ws_protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny  # noqa: I001
from twisted.internet import defer, reactor

from gateway.throttle import FrameBudget, FrameBudgetConfig

logger = logging.getLogger(__name__)

DENIAL_EXTENSION = "websocket.http.response"


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


class DenyingWebSocketProtocol(WebSocketProtocol):
    _denial_status: int | None = None
    _budget: FrameBudget | None = None
    _reading_paused = False
    _throttled = 0

    def onMessage(self, payload, isBinary):
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

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.http.response.start" and self.state == self.STATE_CONNECTING:
            self._denial_status = int(message.get("status", 403))
            return
        if kind == "websocket.http.response.body" and self._denial_status is not None:
            if message.get("more_body") or not hasattr(self, "handshake_deferred"):
                return
            status = self._denial_status
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Refused"
            self.handshake_deferred.errback(ConnectionDeny(code=status, reason=phrase))
            del self.handshake_deferred
            self.server.protocol_disconnected(self)
            return
        if kind == "websocket.send" and self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            # The charger is going or gone (its disconnect is on its way to the consumer): a
            # frame for it is dropped, not raised into whoever relayed it (the CSMS reader).
            logger.debug("charger_send_after_close_dropped path=%s", getattr(self, "path", b"").decode("latin-1"))
            return
        super().handle_reply(message)

    def serverClose(self, code=None):
        # autobahn lets an application send only 1000 or 3000-4999; 1001 "going away" is what
        # a server that shuts down sends, so it goes out as the protocol's own close frame.
        if code == 1001:
            self.sendCloseFrame(code=1001, isReply=False)
        else:
            super().serverClose(code)


class LinkRayServer(Server):
    """daphne's Server with the denial extension and a graceful stop (see module doc)."""

    shutdown_close_code = 1001

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # daphne builds its factory inside run(); every protocol it makes is ours.
        factory.protocol = DenyingWebSocketProtocol
        self._ws_factory = factory

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[DENIAL_EXTENSION] = {}
        return super().create_application(protocol, scope)

    def kill_all_applications(self):
        from gateway.runtime import runtime

        graceful = defer.Deferred.fromFuture(asyncio.ensure_future(runtime.shutdown(code=self.shutdown_close_code)))
        graceful.addErrback(lambda failure: logger.error("shutdown_failed error=%s", failure.getErrorMessage()))
        graceful.addBoth(lambda _: super(LinkRayServer, self).kill_all_applications())
        return graceful
