from django.urls import re_path

from gateway.consumers import ChargerConsumer

# ocpp/<chargeBoxId>, with or without a trailing slash. The router sees the decoded path, so
# an escaped '/' (%2F) inside an id must still match; the consumer reads the id from the raw path.
websocket_urlpatterns = [
    re_path(r"^ocpp/(?P<charge_box_id>.+?)/?$", ChargerConsumer.as_asgi()),
    # Any other path: the consumer refuses it with 404 and a `charger_refused` line (without
    # this route the router raises, and the charger got a 500 and the log a traceback).
    re_path(r"", ChargerConsumer.as_asgi()),
]
