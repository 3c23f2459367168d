"""`manage.py meter_probe`: read a meter once and print every value, or say why not.

    manage.py meter_probe --model sdm630 --port /dev/ttyUSB0 --unit 1
    manage.py meter_probe --model em24_e1 --host 192.168.1.40            (Modbus TCP, port 502)
    manage.py meter_probe --model sdm630 --host 192.168.1.41 --port 4001 --rtu-over-tcp
"""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError

from meters.catalog import catalog
from meters.poller import utc_now
from meters.polling import Connection, MeterUnavailable, read_once
from meters.readings import PHASE_NAMES
from meters.registers import PARITIES, SERIAL_BAUDRATES
from meters.templatetags.meter_format import measure


class Command(BaseCommand):
    help = "Read a meter once over Modbus RTU or TCP and print every value with its unit."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="register map key, e.g. sdm630 (--list-models shows all)")
        parser.add_argument("--list-models", action="store_true", help="list the known models and exit")
        parser.add_argument("--port", help="serial port (e.g. /dev/ttyUSB0); with --host, the TCP port (default 502)")
        parser.add_argument("--host", help="Modbus TCP host (meter or serial-to-Ethernet gateway)")
        parser.add_argument("--rtu-over-tcp", action="store_true", help="RTU framing over TCP (transparent gateways)")
        parser.add_argument("--unit", type=int, help="Modbus unit id 1-247 (default: the model's default, usually 1)")
        parser.add_argument("--baudrate", type=int, choices=SERIAL_BAUDRATES, help="default: the model's default")
        parser.add_argument("--parity", choices=PARITIES, help="N, E or O (default: the model's default)")
        parser.add_argument("--stopbits", type=int, choices=(1, 2), help="default: the model's default")
        parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each answer (default 1)")

    def handle(self, *args, **options):
        maps = catalog()
        if options["list_models"]:
            for key, name in maps.choices():
                self.stdout.write(f"{key:12} {name}")
            return
        meter_map = maps.get(options["model"] or "")
        if meter_map is None:
            raise CommandError(f"--model {options['model']!r}: expected one of {', '.join(sorted(maps.maps))}")
        connection = self._connection(options, meter_map)
        unit_id = options["unit"] if options["unit"] is not None else meter_map.serial_defaults.unit_id
        if not 1 <= unit_id <= 247:
            raise CommandError(f"--unit {unit_id}: expected 1-247")
        try:
            reading, requests, seconds = asyncio.run(read_once(connection, meter_map, unit_id, utc_now))
        except MeterUnavailable as error:
            raise CommandError(error.reason) from None
        self.stdout.write(f"{meter_map.name}, unit {unit_id} on {connection.describe()}")
        self.stdout.write(f"{requests} request{'s' if requests != 1 else ''} in {seconds * 1000:.0f} ms")
        phases = PHASE_NAMES[: reading.phases]
        self.stdout.write(f"{'':12}" + "".join(f"{phase.upper():>14}" for phase in phases))
        for label, quantity, unit in (("Voltage", "voltage_v", "V"), ("Current", "current_a", "A"), ("Power", "power_w", "W")):
            values = getattr(reading, quantity)
            self.stdout.write(f"{label:12}" + "".join(f"{measure(getattr(values, phase), unit):>14}" for phase in phases))
        for label, quantity, unit in (
            ("Total power", "total_power_w", "W"),
            ("Import", "import_energy_wh", "Wh"),
            ("Export", "export_energy_wh", "Wh"),
            ("Frequency", "frequency_hz", "Hz"),
        ):
            self.stdout.write(f"{label:12}{measure(reading.value(quantity), unit):>14}")
        if reading.missing:
            self.stdout.write(f"Not available: {', '.join(reading.missing)}")

    def _connection(self, options, meter_map) -> Connection:
        if options["timeout"] <= 0:
            raise CommandError("--timeout: expected a positive number of seconds")
        if options["host"]:
            host, _, port_text = options["host"].partition(":")
            port_text = port_text or options["port"] or str(meter_map.tcp_port)
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise CommandError(f"TCP port {port_text!r}: expected 1-65535")
            return Connection(
                transport="rtu_over_tcp" if options["rtu_over_tcp"] else "tcp",
                host=host,
                port=int(port_text),
                timeout_s=options["timeout"],
            )
        if not options["port"]:
            raise CommandError("give --port /dev/ttyUSB0 for a serial meter, or --host for Modbus TCP")
        defaults = meter_map.serial_defaults
        return Connection(
            transport="rtu",
            serial_port=options["port"],
            baudrate=options["baudrate"] or defaults.baudrate,
            parity=options["parity"] or defaults.parity,
            stopbits=options["stopbits"] or defaults.stopbits,
            timeout_s=options["timeout"],
        )
