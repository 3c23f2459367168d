"""Format measured values with their units; missing values show as a dash."""

from django import template

register = template.Library()

_FORMATS = {
    "V": (1, "V"),
    "A": (2, "A"),
    "W": (0, "W"),
    "Hz": (2, "Hz"),
    "s": (1, "s"),
}


@register.filter
def measure(value, unit: str) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if unit == "Wh":
        return f"{number / 1000:,.1f} kWh"
    if unit == "ms":
        return f"{number * 1000:.0f} ms"
    decimals, suffix = _FORMATS.get(unit, (2, unit))
    return f"{number:,.{decimals}f} {suffix}"
