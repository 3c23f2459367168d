from django.urls import re_path

from gateway.consumers import ChargerConsumer

# ocpp/<chargeBoxId>, with or without a trailing slash. The consumer reads the id from the raw
# path so URL-escaped characters (even %2F) survive.
websocket_urlpatterns = [
    re_path(r"^ocpp/(?P<charge_box_id>[^/]+)/?$", ChargerConsumer.as_asgi()),
]
