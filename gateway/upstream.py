"""The CSMS leg of one charger: a websocket client that reconnects with backoff and jitter.

Django-free asyncio. The session owns one UpstreamLink and is told about every frame and every
change of state through callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from linkray_site.metrics import CSMS_RECONNECT_FAILURES

logger = logging.getLogger(__name__)

OCPP16 = Subprotocol("ocpp1.6")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    url: str  # the full URL of this charger on the CSMS
    authorization: str | None = None  # the charger's Authorization header, unchanged
    ca_bundle: str = ""
    compression: bool = False
    connect_timeout_s: float = 10.0
    ping_interval_s: float = 30.0
    max_frame_bytes: int = 256 * 1024
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


def charger_url(base_url: str, raw_charge_box_id: str) -> str:
    """<CSMS base URL>/<chargeBoxId>; the id keeps the escaping the charger used."""
    return base_url.rstrip("/") + "/" + raw_charge_box_id


def escape_charge_box_id(charge_box_id: str) -> str:
    return quote(charge_box_id, safe="-._~:@!$&'()*+,;=")


class UpstreamRejected(Exception):
    """The CSMS answered the handshake with an HTTP error (bad credentials, unknown charger)."""

    def __init__(self, status: int):
        super().__init__(f"CSMS refused the connection with HTTP {status}")
        self.status = status


def backoff_delays(minimum_s: float, maximum_s: float, rng: random.Random):
    """Exponential backoff with full jitter, so a site's chargers do not reconnect in step."""
    attempt = 0
    floor = min(minimum_s / 2, maximum_s)
    while True:
        ceiling = max(floor, min(maximum_s, minimum_s * (2**attempt)))
        yield rng.uniform(floor, ceiling)
        attempt = min(attempt + 1, 30)


class ConnectGate:
    """At most `limit` CSMS handshakes at a time, across all of a process's legs: a storm of
    chargers (or a CSMS coming back to thousands of reconnecting legs) reaches the CSMS as a
    steady stream, not thousands of handshakes in one millisecond. A leg that had to wait for
    its slot waits a random 0-jitter_s more, so the waiting ones do not start in step. A slow
    CSMS holds slots only up to the connect timeout; legs already up never pass through here.

    One gate per event loop (asyncio primitives belong to the loop that first uses them)."""

    def __init__(self, limit: int, jitter_s: float, rng: random.Random | None = None):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.jitter_s = jitter_s
        self._rng = rng or random.Random()
        self._semaphore = asyncio.Semaphore(limit)
        self.active = 0
        self.waiting = 0
        self._queued_in_episode = 0

    @contextlib.asynccontextmanager
    async def slot(self):
        if self._semaphore.locked():
            if self.waiting == 0:
                logger.info("csms_connect_throttled limit=%s", self.limit)
            self.waiting += 1
            self._queued_in_episode += 1
            try:
                await self._semaphore.acquire()
            finally:
                self.waiting -= 1
            try:
                if self.jitter_s > 0:
                    await asyncio.sleep(self._rng.uniform(0, self.jitter_s))
            except BaseException:
                self._semaphore.release()
                raise
            if self.waiting == 0:
                logger.info("csms_connect_throttle_over queued=%s", self._queued_in_episode)
                self._queued_in_episode = 0
        else:
            await self._semaphore.acquire()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()
# HTTP answers that refuse this charger (credentials, identity) rather than report an outage.
REFUSING_STATUSES = frozenset({400, 401, 403, 404})


class ReconnectFailureSummary:
    """During an outage every charger's leg fails to reconnect every few seconds: the first
    failure is logged at once, the rest as one `csms_reconnect_failed_summary` line per
    interval (chargers, attempts, the commonest error) instead of a line per charger per
    attempt. Each failure is still logged at DEBUG."""

    def __init__(self, interval_s: float = 30.0, clock=time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._window_started: float | None = None
        self._attempts = 0
        self._chargers: set[str] = set()
        self._errors: dict[str, int] = {}

    def failed(self, charge_box_id: str, error: str) -> None:
        logger.debug("csms_reconnect_failed charge_box_id=%s error=%s", charge_box_id, error)
        now = self._clock()
        if self._window_started is None:
            self._window_started = now
            logger.info(
                "csms_reconnect_failed charge_box_id=%s error=%s next=summary_every_%ds",
                charge_box_id,
                error,
                int(self.interval_s),
            )
            return
        self._attempts += 1
        self._chargers.add(charge_box_id)
        if len(self._errors) < 20 or error in self._errors:
            self._errors[error] = self._errors.get(error, 0) + 1
        if now - self._window_started >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Log what the current window holds (also called when a leg is back)."""
        if self._window_started is None:
            return
        if not self._attempts:
            self._window_started = None
            return
        error = max(self._errors, key=self._errors.get) if self._errors else "-"
        logger.info(
            "csms_reconnect_failed_summary chargers=%d attempts=%d window_s=%d error=%s",
            len(self._chargers),
            self._attempts,
            round(self._clock() - self._window_started),
            error,
        )
        self._window_started = self._clock()
        self._attempts = 0
        self._chargers = set()
        self._errors = {}


# One per process: the summary is about the site's outage, not one charger.
reconnect_failures = ReconnectFailureSummary()


class UpstreamLink:
    def __init__(
        self,
        config: UpstreamConfig,
        on_frame: Callable[[str | bytes], Awaitable[None]],
        on_up: Callable[[], Awaitable[None]],
        on_down: Callable[[str], Awaitable[None]],
        charge_box_id: str,
        gate: ConnectGate | None = None,
        on_refused: Callable[[int], Awaitable[None]] | None = None,
    ):
        self.config = config
        # Called when the CSMS refuses a reconnection with an HTTP error and no other
        # Authorization candidate is left; reconnecting stops. None: keep trying (orphans).
        self._on_refused = on_refused
        self._on_frame = on_frame
        self._on_up = on_up
        self._on_down = on_down
        self._charge_box_id = charge_box_id
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._reconnector: asyncio.Task | None = None
        self._closed = False
        self._rng = random.Random()
        self._authorization_candidates: list[str] = []
        self._gate = gate

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def connect(self, *, start_reading: bool = True) -> None:
        """Open the leg once. Raises UpstreamRejected or OSError/TimeoutError-like errors.

        With start_reading=False, frames wait in the connection until start_reading(): the
        charger leg must be open before the CSMS's first CALL is relayed."""
        config = self.config
        headers = []
        if config.authorization is not None:
            headers.append(("Authorization", config.authorization))
        ssl_context = None
        if config.url.startswith("wss://"):
            ssl_context = ssl.create_default_context(cafile=config.ca_bundle or None)
        try:
            async with self._gate.slot() if self._gate is not None else contextlib.nullcontext():
                if self._closed:
                    raise ConnectionError("link closed while waiting to connect")
                connection = await self._open(config, headers, ssl_context)
        except InvalidStatus as error:
            raise UpstreamRejected(error.response.status_code) from None
        if self._closed:
            await connection.close()
            raise ConnectionError("link closed while connecting")
        if connection.subprotocol != OCPP16:
            logger.warning(
                "csms_subprotocol_missing charge_box_id=%s subprotocol=%s",
                self._charge_box_id,
                connection.subprotocol,
            )
        self._connection = connection
        if start_reading:
            self.start_reading()
        logger.info("csms_connected charge_box_id=%s url=%s", self._charge_box_id, config.url)

    async def _open(self, config: UpstreamConfig, headers, ssl_context) -> ClientConnection:
        return await connect(
            config.url,
            subprotocols=[OCPP16],
            additional_headers=headers,
            compression="deflate" if config.compression else None,
            open_timeout=config.connect_timeout_s,
            ping_interval=config.ping_interval_s or None,
            ping_timeout=config.ping_interval_s or None,
            close_timeout=2,
            max_size=max(16 * 1024 * 1024, config.max_frame_bytes * 4),
            max_queue=64,
            ssl=ssl_context,
            proxy=None,
            user_agent_header=None,
        )

    def start_reading(self) -> None:
        connection = self._connection
        if connection is not None and (self._reader is None or self._reader.done()):
            self._reader = asyncio.create_task(self._read(connection), name=f"upstream-read:{self._charge_box_id}")

    def start_reconnecting(self) -> None:
        if self._closed or self._reconnector is not None:
            return
        self._reconnector = asyncio.create_task(self._reconnect(), name=f"upstream-reconnect:{self._charge_box_id}")

    def update_authorization(self, *candidates: str) -> None:
        """Use a new Authorization header from the next connection on. With several
        candidates, a refused handshake moves on to the next one."""
        self._authorization_candidates = list(candidates)
        self.config = replace(self.config, authorization=candidates[0])

    async def send(self, raw: str | bytes) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            await connection.send(raw)
        except ConnectionClosed:
            return False
        return True

    async def drop(self) -> None:
        """Close the current connection but keep the link: it reconnects as after an outage."""
        connection = self._connection
        if connection is not None:
            await connection.close()

    async def close(self, code: int = 1000) -> None:
        """Close for good (1000: the charger left; 1001: LinkRay is shutting down)."""
        self._closed = True
        if self._reconnector is not None and self._reconnector is not asyncio.current_task():
            self._reconnector.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close(code)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    async def _read(self, connection: ClientConnection) -> None:
        reason = "closed"
        try:
            async for message in connection:
                await self._on_frame(message)
        except ConnectionClosed as error:
            reason = f"closed code={error.rcvd.code if error.rcvd else 'none'}"
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug while handling one frame must not leave the charger without its CSMS leg
            # silently: log it, drop the leg, and let reconnection take over.
            logger.exception("csms_reader_failed charge_box_id=%s", self._charge_box_id)
            reason = "reader failed"
            await connection.close()
        if self._connection is connection:
            self._connection = None
        if self._closed:
            return
        logger.warning("csms_disconnected charge_box_id=%s reason=%s", self._charge_box_id, reason)
        await self._on_down(reason)
        self.start_reconnecting()

    async def _reconnect(self) -> None:
        delays = backoff_delays(self.config.reconnect_min_s, self.config.reconnect_max_s, self._rng)
        # Authorization candidates not yet refused in this run of refusals.
        untried = max(0, len(self._authorization_candidates) - 1)
        try:
            while not self._closed:
                await asyncio.sleep(next(delays))
                try:
                    await self.connect()
                except UpstreamRejected as error:
                    if error.status not in REFUSING_STATUSES:
                        # 502/503 from a proxy in front of a restarting CSMS: still an outage.
                        reconnect_failures.failed(self._charge_box_id, f"HTTP {error.status}")
                        CSMS_RECONNECT_FAILURES.labels("unreachable").inc()
                        continue
                    logger.warning(
                        "csms_reconnect_refused charge_box_id=%s status=%s", self._charge_box_id, error.status
                    )
                    CSMS_RECONNECT_FAILURES.labels("refused").inc()
                    if untried:
                        untried -= 1
                        self._authorization_candidates.append(self._authorization_candidates.pop(0))
                        self.config = replace(self.config, authorization=self._authorization_candidates[0])
                        continue
                    if self._on_refused is not None:
                        self._reconnector = None
                        await self._on_refused(error.status)
                        return
                    continue
                except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as error:
                    reconnect_failures.failed(self._charge_box_id, str(error) or type(error).__name__)
                    CSMS_RECONNECT_FAILURES.labels("unreachable").inc()
                    continue
                untried = max(0, len(self._authorization_candidates) - 1)
                reconnect_failures.flush()
                self._reconnector = None
                await self._on_up()
                return
        finally:
            if self._reconnector is asyncio.current_task():
                self._reconnector = None
