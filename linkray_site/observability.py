"""/healthz, /readyz and /metrics: how a supervisor, a load balancer and Prometheus see one
LinkRay process.

- `/healthz`: the process answers (nothing else is checked). Unauthenticated.
- `/readyz`: database, channel layer, grid meter freshness and CSMS reachability, as status
  words only (no hosts, errors or counts). Unauthenticated, cached for READY_CACHE_S so a
  scraper hammering it costs one check every couple of seconds. 503 only when this process
  cannot serve (database or channel layer failing); a stale meter or an unreachable CSMS gives
  200 "degraded", because taking LinkRay out of service fixes neither, and chargers need its
  offline service exactly then.
- `/metrics`: Prometheus text of this process (scale-out: each process exposes its own and
  Prometheus scrapes each). Bearer token with view_site, or a client address listed in
  LINKRAY_METRICS_ALLOWED_ADDRESSES.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

from accounts.access import client_address, principal_for_token
from accounts.roles import VIEW_SITE
from linkray_site.metrics import MESSAGE_TYPE_NAMES, REGISTRY

logger = logging.getLogger(__name__)

READY_CACHE_S = 2.0
CHECK_TIMEOUT_S = 1.0

_ready_cache: tuple[float, int, dict] | None = None
_ready_lock: asyncio.Lock | None = None


# --- /healthz --------------------------------------------------------------------------------


async def healthz(request):
    return JsonResponse({"status": "ok"})


# --- /readyz ---------------------------------------------------------------------------------


async def readyz(request):
    global _ready_cache, _ready_lock
    if _ready_lock is None:
        _ready_lock = asyncio.Lock()
    async with _ready_lock:
        now = time.monotonic()
        if _ready_cache is None or now >= _ready_cache[0]:
            status, body = await _readiness()
            _ready_cache = (time.monotonic() + READY_CACHE_S, status, body)
        _, status, body = _ready_cache
    return JsonResponse(body, status=status)


async def _readiness() -> tuple[int, dict]:
    database, channel_layer, meter, csms = await asyncio.gather(
        _bounded(_check_database()), _bounded(_check_channel_layer()), _bounded(_check_meter()), _bounded(_check_csms())
    )
    checks = {"database": database, "channel_layer": channel_layer, "meter": meter, "csms": csms}
    if database != "ok" or channel_layer != "ok":
        return 503, {"status": "not_ready", "checks": checks}
    degraded = meter not in ("ok", "not_configured") or csms not in ("ok", "not_configured")
    return 200, {"status": "degraded" if degraded else "ready", "checks": checks}


async def _bounded(check) -> str:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except asyncio.TimeoutError:
        return "timeout"
    except Exception as error:
        # The reason goes to the log, never into the answer.
        logger.warning("readiness_check_failed error=%s", str(error) or type(error).__name__)
        return "failing"


async def _check_database() -> str:
    def select_one():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    await database_sync_to_async(select_one)()
    return "ok"


async def _check_channel_layer() -> str:
    layer = get_channel_layer()
    # The default prefix: channels-redis reads one process-specific list for all such channels,
    # whoever is receiving; a channel of another prefix would wait behind the chargers' reads.
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "readyz.ping"})
    message = await layer.receive(channel)
    return "ok" if message.get("type") == "readyz.ping" else "failing"


async def _check_meter() -> str:
    from meters.selectors import grid_status

    status = await database_sync_to_async(grid_status)()
    if status is None:
        return "not_configured"
    if status.fresh_reading(datetime.now(UTC)) is not None:
        return "ok"
    return "failing" if status.consecutive_failures else "stale"


async def _check_csms() -> str:
    from gateway.runtime import runtime

    if not settings.LINKRAY_CSMS_URL:
        return "not_configured"
    states = [session.state.csms_state for session in list(runtime.sessions.values())]
    if "connected" in states:
        return "ok"
    # No charger here holds an open leg: can the CSMS be reached at all (TCP, no handshake)?
    parts = urlsplit(settings.LINKRAY_CSMS_URL)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        _, writer = await asyncio.open_connection(parts.hostname, port)
    except OSError:
        return "unreachable"
    writer.close()
    return "ok"


# --- /metrics --------------------------------------------------------------------------------


def _metrics_allowed(request) -> tuple[bool, int]:
    """(allowed, status if not): address allow-list first, then a bearer token."""
    address = client_address(request)
    # A request relayed by the reverse proxy comes from the proxy's address: only a direct
    # scrape may be let in by address.
    proxied = "x-forwarded-for" in request.headers
    if address and settings.LINKRAY_METRICS_ALLOWED_ADDRESSES and not proxied:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is not None and any(ip in network for network in settings.LINKRAY_METRICS_ALLOWED_ADDRESSES):
            return True, 200
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False, 401
    principal = principal_for_token(token.strip(), address)
    if principal is None:
        return False, 401
    return (True, 200) if principal.can(VIEW_SITE) else (False, 403)


async def metrics(request):
    allowed, status = await database_sync_to_async(_metrics_allowed)(request)
    if not allowed:
        logger.warning("metrics_refused status=%s peer=%s", status, client_address(request))
        response = JsonResponse({"error": "authentication required" if status == 401 else "forbidden"}, status=status)
        if status == 401:
            response["WWW-Authenticate"] = "Bearer"
        return response
    snapshot = _process_snapshot()
    snapshot.update(await database_sync_to_async(_database_snapshot)())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _process_snapshot() -> dict:
    """What this process holds in memory, read on the event loop (no I/O)."""
    from gateway.runtime import runtime

    sessions = list(runtime.sessions.values())
    legs: dict[str, int] = {}
    backlog = 0
    connected = 0
    for session in sessions:
        if not session.headless and not session.closed:
            connected += 1
        state = session.state.csms_state or "unknown"
        legs[state] = legs.get(state, 0) + 1
        if session.offline is not None:
            backlog += session.offline.backlog
    return {
        "chargers_connected": connected,
        "csms_legs": legs,
        "replay_backlog": backlog,
        "frames": dict(runtime.journal.frames.counts),
        "journal_dropped": runtime.journal.dropped,
        "journal_buffered": len(runtime.journal),
    }


def _database_snapshot() -> dict:
    from gateway.models import QueuedMessage
    from meters import live
    from meters.models import Meter

    meters = list(Meter.objects.filter(enabled=True).values_list("pk", "name", "role"))
    statuses = live.get_statuses([pk for pk, _, _ in meters])
    try:
        limits = _balancing_limits()
    except Exception:
        logger.exception("metrics_balancing_limits_failed")
        limits = []
    return {
        "queued_messages": QueuedMessage.objects.count(),
        "meters": [(pk, name, role, statuses.get(pk)) for pk, name, role in meters],
        "charger_limits": limits,
    }


def _balancing_limits() -> list[tuple[str, float | None, float | None, str]]:
    """(charge_box_id, limit_a, limit_w, reason) of every balanced charger with a decision.
    Read from balancing's ChargerBalancing rows when the balancing app has them; nothing on a
    LinkRay without balancing models."""
    try:
        from balancing.models import ChargerBalancing
    except ImportError:
        return []
    rows = ChargerBalancing.objects.filter(charger__balancing_enabled=True).values_list(
        "charger__charge_box_id", "limit_a", "limit_w", "reason"
    )
    return [(cbid, limit_a, limit_w, reason or "") for cbid, limit_a, limit_w, reason in rows if limit_a is not None or limit_w is not None]


class _SnapshotCollector:
    def __init__(self, snapshot: dict):
        self.snapshot = snapshot

    def collect(self):
        snapshot = self.snapshot
        yield GaugeMetricFamily(
            "linkray_chargers_connected", "Chargers whose websocket is open on this process", value=snapshot["chargers_connected"]
        )
        legs = GaugeMetricFamily("linkray_csms_legs", "CSMS legs of this process's chargers, by state", labels=["state"])
        for state in ("connected", "connecting", "down", "not_configured"):
            legs.add_metric([state], snapshot["csms_legs"].get(state, 0))
        for state, count in snapshot["csms_legs"].items():
            if state not in ("connected", "connecting", "down", "not_configured"):
                legs.add_metric([state], count)
        yield legs
        frames = CounterMetricFamily(
            "linkray_frames_relayed",
            "Frames seen by this process, by direction, message type and action",
            labels=["direction", "message_type", "action"],
        )
        for (direction, message_type, action), count in sorted(snapshot["frames"].items(), key=str):
            frames.add_metric([direction, MESSAGE_TYPE_NAMES.get(message_type, "unparsed"), action or ""], count)
        yield frames
        yield CounterMetricFamily(
            "linkray_journal_dropped", "Journal entries dropped because the database fell behind", value=snapshot["journal_dropped"]
        )
        yield GaugeMetricFamily(
            "linkray_journal_buffered_entries", "Journal entries waiting to be written", value=snapshot["journal_buffered"]
        )
        yield GaugeMetricFamily(
            "linkray_replay_backlog_messages",
            "Messages this process's chargers wait to replay to the CSMS",
            value=snapshot["replay_backlog"],
        )
        yield GaugeMetricFamily(
            "linkray_replay_queue_messages",
            "Messages in the site's replay queue (database; the same on every process)",
            value=snapshot["queued_messages"],
        )
        now = datetime.now(UTC)
        age = GaugeMetricFamily(
            "linkray_meter_reading_age_seconds", "Age of each enabled meter's last good reading", labels=["meter", "role"]
        )
        failures = GaugeMetricFamily(
            "linkray_meter_poll_failures", "Consecutive failed polls of each enabled meter", labels=["meter", "role"]
        )
        up = GaugeMetricFamily("linkray_meter_fresh", "1 if the meter's last reading is fresh", labels=["meter", "role"])
        for _, name, role, status in snapshot["meters"]:
            reading = status.reading if status is not None else None
            if reading is not None:
                age.add_metric([name, role], max(0.0, reading.age_s(now)))
            failures.add_metric([name, role], status.consecutive_failures if status is not None else 0)
            up.add_metric([name, role], 1 if status is not None and status.fresh_reading(now) is not None else 0)
        yield age
        yield failures
        yield up
        limits_a = GaugeMetricFamily(
            "linkray_charger_limit_amperes", "Current limit balancing gives each charger, with its reason", labels=["charge_box_id", "reason"]
        )
        limits_w = GaugeMetricFamily(
            "linkray_charger_limit_watts", "Power limit balancing gives each charger, with its reason", labels=["charge_box_id", "reason"]
        )
        for charge_box_id, limit_a, limit_w, reason in snapshot["charger_limits"]:
            if limit_a is not None:
                limits_a.add_metric([str(charge_box_id), str(reason)], float(limit_a))
            if limit_w is not None:
                limits_w.add_metric([str(charge_box_id), str(reason)], float(limit_w))
        yield limits_a
        yield limits_w
