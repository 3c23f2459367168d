import logging

from django.apps import AppConfig
from django.conf import settings


class MetersConfig(AppConfig):
    name = "meters"

    def ready(self) -> None:
        # Validate every map at start: a broken shipped map stops startup with the file and
        # field in the message; broken custom maps are logged and shown on the meters page.
        from meters.catalog import reload_catalog

        reload_catalog()
        if settings.LINKRAY_LOG_LEVEL != "DEBUG":
            # meters.polling turns every Modbus failure into one structured warning per change
            # of reason; pymodbus would add error lines with hex dumps on every failed poll
            # (every second for a meter that is gone). LINKRAY_LOG_LEVEL=debug shows them.
            logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)
