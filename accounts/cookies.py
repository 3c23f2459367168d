"""Session and CSRF cookies marked Secure whenever the request came over TLS.

LINKRAY_SECURE_COOKIES forces it for every response (a TLS proxy in front that LinkRay cannot
see); with LINKRAY_TLS_PROXY_HEADER the proxy's X-Forwarded-Proto makes request.is_secure()
true, and this middleware does the rest."""

from __future__ import annotations

from django.conf import settings


class SecureCookiesOverTlsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response
