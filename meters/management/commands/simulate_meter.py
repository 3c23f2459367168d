"""`manage.py simulate_meter`: a Modbus meter for demos and tests without hardware.

    manage.py simulate_meter --model sdm630 --port 5020          (Modbus TCP on 127.0.0.1)
    manage.py simulate_meter --model sdm630 --serial /tmp/ttyMeter --baudrate 9600

The values follow a base load plus the charging currents LinkRay's chargers report
(gateway.selectors.metered_charging_current_a, re-read every 2 s), at 230 V and 50 Hz.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from channels.db import database_sync_to_async
from django.core.management.base import BaseCommand, CommandError

from linkray_site.electrical import Phases
from meters.catalog import catalog
from meters.registers import PARITIES, SERIAL_BAUDRATES
from meters.simulator import SimulatedMeter, SimulatedSite, bound_port, start_serial_server, start_tcp_server

logger = logging.getLogger(__name__)
CHARGING_REFRESH_S = 2.0


def _phases(text: str) -> Phases:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise CommandError(f"{text!r}: expected three numbers like 6,4,5") from None
    if len(values) != 3 or any(value < 0 or value > 1000 for value in values):
        raise CommandError(f"{text!r}: expected three currents 0-1000 A like 6,4,5")
    return Phases(*values)


class Command(BaseCommand):
    help = "Serve a simulated meter (Modbus TCP, RTU over TCP, or RTU on a serial port)."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="register map key, e.g. sdm630")
        parser.add_argument("--port", type=int, default=5020, help="TCP port (default 5020; 0 picks a free one)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--rtu-over-tcp", action="store_true", help="RTU framing over TCP, like a transparent gateway")
        parser.add_argument("--serial", help="serve Modbus RTU on this serial port instead of TCP (e.g. one end of a socat pty pair)")
        parser.add_argument("--baudrate", type=int, choices=SERIAL_BAUDRATES, default=9600)
        parser.add_argument("--parity", choices=PARITIES, default="N")
        parser.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
        parser.add_argument("--unit", type=int, default=1, help="unit id to answer as (default 1)")
        parser.add_argument("--base-current", default="6,4,5", help="base load per phase in A (default 6,4,5)")
        parser.add_argument("--voltage", type=float, default=230.0, help="phase voltage in V (default 230)")
        parser.add_argument("--no-chargers", action="store_true", help="do not add the chargers' metered currents")
        parser.add_argument("--sunspec-model", type=int, choices=(201, 202, 203, 204), default=203)

    def handle(self, *args, **options):
        meter_map = catalog().get(options["model"])
        if meter_map is None:
            raise CommandError(f"--model {options['model']!r}: expected one of {', '.join(sorted(catalog().maps))}")
        if not 1 <= options["unit"] <= 247:
            raise CommandError(f"--unit {options['unit']}: expected 1-247")
        if not 0 <= options["port"] <= 65535:
            raise CommandError(f"--port {options['port']}: expected 0-65535")
        if not 50 <= options["voltage"] <= 500:
            raise CommandError(f"--voltage {options['voltage']}: expected 50-500 V")
        site = SimulatedSite(base_current_a=_phases(options["base_current"]), voltage_v=options["voltage"])
        meter = SimulatedMeter(meter_map, site.values, unit_id=options["unit"], sunspec_model=options["sunspec_model"])
        asyncio.run(self._serve(meter, site, options))

    async def _serve(self, meter: SimulatedMeter, site: SimulatedSite, options) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            if options["serial"]:
                server = await start_serial_server(
                    [meter], options["serial"], baudrate=options["baudrate"], parity=options["parity"], stopbits=options["stopbits"]
                )
                where = f"RTU on {options['serial']} at {options['baudrate']} baud 8{options['parity']}{options['stopbits']}"
            else:
                # A transparent RTU gateway passes silence on; a Modbus TCP gateway says "no answer".
                server = await start_tcp_server(
                    [meter],
                    options["host"],
                    options["port"],
                    rtu_framing=options["rtu_over_tcp"],
                    answer_unknown_units=not options["rtu_over_tcp"],
                )
                framing = "RTU over TCP" if options["rtu_over_tcp"] else "Modbus TCP"
                where = f"{framing} on {options['host']}:{bound_port(server)}"
        except OSError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Simulated {meter.meter_map.name} (unit {meter.unit_id}) serving {where}")
        self.stdout.flush()
        follower = None if options["no_chargers"] else loop.create_task(self._follow_chargers(site))
        try:
            await stop.wait()
        finally:
            if follower is not None:
                follower.cancel()
            await server.shutdown()

    async def _follow_chargers(self, site: SimulatedSite) -> None:
        from gateway.selectors import metered_charging_current_a

        failing = False
        while True:
            try:
                site.charging_current_a = await database_sync_to_async(metered_charging_current_a)()
                failing = False
            except Exception as error:  # no database yet, locked: keep the last currents
                if not failing:
                    logger.warning("simulated_meter_charging_unknown reason=%s", error)
                failing = True
            await asyncio.sleep(CHARGING_REFRESH_S)
