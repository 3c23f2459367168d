from django.apps import AppConfig


class MetersConfig(AppConfig):
    name = "meters"

    def ready(self) -> None:
        # Validate every map at start: a broken shipped map stops startup with the file and
        # field in the message; broken custom maps are logged and shown on the meters page.
        from meters.catalog import reload_catalog

        reload_catalog()
        # pymodbus's own log lines are silenced by settings.LOGGING ("pymodbus.logging").
