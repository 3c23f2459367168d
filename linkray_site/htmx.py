"""Responses for pages that htmx refreshes in place."""

from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def render_page_or_partial(request, page: str, partial: str, context: dict, status: int = 200):
    """The whole page, or only its live part when htmx asks (HX-Request); caches keep them apart."""
    response = render(request, partial if request.htmx else page, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
