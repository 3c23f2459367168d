from django.urls import re_path

from gateway.consumers import ChargerConsumer

# ocpp/<chargeBoxId>, with or without a trailing slash. The router sees the decoded path, so
# an escaped '/' (%2F) inside an id must still match; the consumer reads the id from the raw path.
websocket_urlpatterns = [
    re_path(r"^ocpp/(?P<charge_box_id>.+?)/?$", ChargerConsumer.as_asgi()),
]
