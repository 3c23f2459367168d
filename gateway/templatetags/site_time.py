"""One way to show a moment on every page: `{{ value|sitetime }}`, in the site's time zone
(settings.TIME_ZONE, from LINKRAY_TIME_ZONE), as `2026-03-01 13:00:05`. Registered as a
template builtin (settings.TEMPLATES), so no template needs `{% load %}`.

Missing values give "" (so `|default:"never"` still works); anything that is not a moment is
shown as it is rather than breaking the page.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

SITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_site_time(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.utc)
    return timezone.localtime(value).strftime(SITE_TIME_FORMAT)


@register.filter
def sitetime(value) -> str:
    return format_site_time(value)


@register.simple_tag
def site_time_zone() -> str:
    return timezone.get_current_timezone_name()
