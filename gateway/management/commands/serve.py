"""`manage.py serve`: the whole controller in one process (daphne + background work)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import sys
from datetime import UTC, datetime

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

logger = logging.getLogger("linkray.serve")


class Command(BaseCommand):
    help = "Run LinkRay: apply migrations, then serve chargers, the CSMS relay and the web page."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks one)")
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="share the port with other LinkRay processes (SO_REUSEPORT; also LINKRAY_REUSE_PORT=true)",
        )

    def handle(self, *args, host: str, port: int, reuse_port: bool = False, **options):
        if not 0 <= port <= 65535:
            raise CommandError(f"--port {port}: expected 0-65535")
        reuse_port = reuse_port or settings.LINKRAY_REUSE_PORT
        if reuse_port and settings.LINKRAY_EMBEDDED:
            raise CommandError(
                "--reuse-port: several server processes need REDIS_URL (the in-memory channel layer is per process)"
            )
        call_command("migrate", interactive=False, verbosity=0)
        from linkray_site.static_files import ensure_collected

        ensure_collected()  # a fresh clone needs no manual collectstatic
        ensure_initial_admin(self.stdout)
        if settings.LINKRAY_EMBEDDED:
            from gateway.services import mark_all_chargers_gone

            mark_all_chargers_gone(datetime.now(UTC))

        _tune_runtime()
        # daphne installs Twisted's asyncio reactor when imported; nothing before this line may
        # import twisted.internet.reactor.
        from gateway.websocket_server import ChargerServer, adopted_endpoint, listening_socket, raise_open_files_limit

        from channels.routing import get_default_application

        open_files, open_files_hard = raise_open_files_limit()
        try:
            sock = listening_socket(host, port, backlog=settings.LINKRAY_LISTEN_BACKLOG, reuse_port=reuse_port)
        except OSError as error:
            raise CommandError(f"cannot listen on {host}:{port}: {error}") from None
        logger.info(
            "listen_socket backlog=%s reuse_port=%s open_files_limit=%s open_files_hard=%s",
            settings.LINKRAY_LISTEN_BACKLOG,
            reuse_port,
            open_files,
            open_files_hard,
        )
        server = ChargerServer(
            get_default_application(),
            endpoints=[adopted_endpoint(sock)],
            signal_handlers=True,
            # Chargers stay connected for weeks: no maximum connection time.
            websocket_timeout=-1,
            # Both handshake deadlines lie beyond LinkRay's own admission deadline, which
            # answers 503: a charger in a storm is never dropped without an HTTP answer.
            websocket_handshake_timeout=settings.LINKRAY_WEBSOCKET_HANDSHAKE_TIMEOUT_S,
            websocket_connect_timeout=settings.LINKRAY_WEBSOCKET_HANDSHAKE_TIMEOUT_S,
            # A site leaving at once (5,000 chargers) queues every teardown's database write
            # behind the others: daphne's 10 s killed 241 of them half-way (state left
            # "connected"). Teardowns end on their own; this only bounds a stuck one.
            application_close_timeout=120,
            ping_interval=settings.LINKRAY_CHARGER_PING_INTERVAL_S,
            ping_timeout=settings.LINKRAY_CHARGER_PING_INTERVAL_S * 2,
            # Above LinkRay's own limit, so an oversized frame reaches the gateway and is
            # refused there with a clear log line instead of a silent disconnect.
            websocket_max_message_size=settings.LINKRAY_WEBSOCKET_HARD_LIMIT_BYTES,
            websocket_max_frame_size=settings.LINKRAY_WEBSOCKET_HARD_LIMIT_BYTES,
            ready_callable=lambda: _on_ready(server, host),
            verbosity=0,
        )
        # SIGTERM: ChargerServer closes every leg with 1001 and flushes before daphne stops.
        server.run()
        sock.close()  # Twisted adopted a duplicate of it


def _tune_runtime() -> None:
    """Process-wide choices for a long-running relay of thousands of sockets."""
    if settings.LINKRAY_EVENT_LOOP == "uvloop":
        import uvloop

        # daphne creates its Twisted reactor's loop with asyncio.new_event_loop() when
        # daphne.server is first imported, which must therefore come after this.
        if "daphne.server" in sys.modules:
            logger.warning("event_loop_not_applied loop=uvloop reason=daphne_server_already_imported")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Everything imported so far lives as long as the process: keep it out of every full
    # collection, which over a thousand chargers' objects stalled the relay for 100+ ms.
    # (Rarer full collections were tried too: memory then grew by ~28 MiB per reconnect of
    # 1000 chargers, so the thresholds stay Python's.)
    gc.collect()
    gc.freeze()


def _on_ready(server, host: str) -> None:
    if settings.LINKRAY_CHARGER_COMPRESSION:
        # daphne accepts no websocket extension; connections read the factory's options when
        # they open, so setting them before the first charger arrives is enough.
        server.ws_factory.setProtocolOptions(perMessageCompressionAccept=_accept_deflate)
    for address in server.listening_addresses:
        actual_port = address[1]
        logger.info(
            "linkray_listening host=%s port=%s embedded=%s csms_url=%s",
            host,
            actual_port,
            settings.LINKRAY_EMBEDDED,
            settings.LINKRAY_CSMS_URL or "-",
        )
        print(f"LinkRay listening on http://{host}:{actual_port}/ (chargers: ws://{host}:{actual_port}/ocpp/<chargeBoxId>)", flush=True)
    from twisted.internet import reactor

    # Startup triggers fire before the reactor starts the asyncio loop; call_soon runs the
    # background work once the loop itself is running.
    reactor.callWhenRunning(lambda: reactor._asyncioEventloop.call_soon(_start_background))


def _start_background() -> None:
    from gateway.runtime import runtime

    logger.info("event_loop loop=%s", type(asyncio.get_running_loop()).__module__)
    runtime.ensure_started()
    asyncio.ensure_future(_supervise("gateway.orphan_replay.run_orphan_replay"))
    if settings.LINKRAY_EMBEDDED:
        for path in settings.LINKRAY_EMBEDDED_TASKS:
            asyncio.ensure_future(_supervise(path))


async def _supervise(path: str) -> None:
    """Run one background coroutine; if it dies, log and restart it after a pause."""
    target = import_string(path)
    while True:
        try:
            await target()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background_task_failed task=%s", path)
            await asyncio.sleep(5)


def _accept_deflate(offers):
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def ensure_initial_admin(stdout) -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return
    password = settings.LINKRAY_ADMIN_PASSWORD or secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "", password)
    if not settings.LINKRAY_ADMIN_PASSWORD:
        path = settings.DATA_DIR / "initial_admin_password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        stdout.write(f"Created user 'admin'; its password is in {path}\n")
    sys.stdout.flush()
