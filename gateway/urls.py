import re

from django.urls import path, register_converter

from gateway import views


class ChargeBoxIdConverter:
    """One path segment holding any charge box id. Chargers may connect with URL-escaped
    characters, even `%2F`: the id's `%` and `/` are escaped once more here, so reversing a URL
    never fails and the server's one decoding gives back `%2F`, which this turns into `/`."""

    regex = "[^/]+"
    _escaped = re.compile("%(25|2F)")

    def to_python(self, value: str) -> str:
        if "\x00" in value:
            # No charger has one (PostgreSQL cannot even compare it): not found, not a 500.
            raise ValueError("a charge box id never holds a NUL character")
        return self._escaped.sub(lambda match: "%" if match.group(1) == "25" else "/", value)

    def to_url(self, value: str) -> str:
        return value.replace("%", "%25").replace("/", "%2F")


register_converter(ChargeBoxIdConverter, "charge_box_id")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("chargers/<charge_box_id:charge_box_id>/", views.charger, name="charger"),
    path("chargers/<charge_box_id:charge_box_id>/queue/", views.charger_queue, name="charger-queue"),
    path("chargers/<charge_box_id:charge_box_id>/actions/", views.charger_action, name="charger-action"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions.csv", views.sessions_csv, name="sessions-csv"),
    path("settings/gateway/", views.gateway_settings, name="gateway-settings"),
]
