"""Responses for pages that htmx refreshes in place.

A live fragment carries an ETag of its own bytes and `Cache-Control: no-cache, private`: the
browser revalidates every poll, and an unchanged fragment costs a 304 with no body instead of
the whole table again (live.js then skips the swap). Pages poll only while the tab is visible
(`hx-trigger="every 2s [!document.hidden]"`).
"""

import hashlib

from django.shortcuts import render
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.http import quote_etag
from django.utils.text import compress_string

GZIP_RANDOM_BYTES = 100

LIVE_TRIGGER = "every 2s [!document.hidden], visibilitychange[!document.hidden] from:document"


def render_page_or_partial(request, page: str, partial: str, context: dict, status: int = 200):
    """The whole page, or only its live part when htmx asks (HX-Request); caches keep them apart."""
    response = render(request, partial if request.htmx else page, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    if request.htmx and request.method == "GET" and status == 200:
        response = conditional_fragment(request, response)
    return response


def conditional_fragment(request, response):
    """ETag the fragment; a 304 when the browser already holds these bytes; gzip otherwise
    (a fragment holds no secret such as a CSRF token, and Django pads the gzip header against
    BREACH anyway)."""
    etag = quote_etag(hashlib.blake2b(response.content, digest_size=16).hexdigest())
    response["ETag"] = etag
    patch_cache_control(response, no_cache=True, private=True)
    conditional = get_conditional_response(request, etag=etag, response=response)
    if conditional is response and "gzip" in request.headers.get("Accept-Encoding", "") and len(response.content) > 200:
        compressed = compress_string(response.content, max_random_bytes=GZIP_RANDOM_BYTES)
        if len(compressed) < len(response.content):
            response.content = compressed
            response["Content-Encoding"] = "gzip"
            response["Content-Length"] = str(len(compressed))
            response["ETag"] = "W/" + etag  # same content, other bytes on the wire (as GZipMiddleware does)
            patch_vary_headers(response, ("Accept-Encoding",))
    return conditional
