import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkray_site.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gateway.routing import websocket_urlpatterns  # noqa: E402

# Chargers send no Origin header, so the OCPP route is deliberately not wrapped in
# AllowedHostsOriginValidator (see docs/architecture.md).
application = ProtocolTypeRouter(
    {
        # Static files (admin, htmx, the pages' CSS/JS) are served by whitenoise's middleware:
        # compressed, hashed names cached for a year (linkray_site/static_files.py).
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
