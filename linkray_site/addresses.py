"""Is this a usable network address? Answers in words an operator can act on.

Pure (stdlib only): used by the settings' validators (linkray_site.env), the charger's CSMS URL
field and the meter form, so a bad address is refused where it is typed, not discovered later
as `...:5020:502` in a poller's log.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_HOST_CHARS = 253  # DNS limit for a whole name
WS_URL_EXAMPLE = "wss://csms.example.com/ocpp"

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_HOST_AND_PORT = re.compile(r"^(?P<host>[^:\[\]]+|\[[^\]]*\]):(?P<port>\d+)$")


def host_problem(host: str) -> str | None:
    """None for a host name, IPv4 or IPv6 address (IPv6 may be in brackets); else why not."""
    if not host:
        return "Enter a host name or an IP address."
    if len(host) > MAX_HOST_CHARS:
        return f"A host name has at most {MAX_HOST_CHARS} characters; this one has {len(host)}."
    if "://" in host:
        return "Enter only the host name or IP address, without ws://, tcp:// or any other scheme."
    match = _HOST_AND_PORT.match(host)
    if match and host_problem(match.group("host").strip("[]")) is None:
        return (
            f"Enter the port ({match.group('port')}) in the Port field, and here only the host: "
            f"{match.group('host').strip('[]')}."
        )
    if any(character.isspace() for character in host):
        return "A host name cannot contain spaces."
    if "/" in host:
        return "Enter only the host name or IP address, without a path."
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
        return None
    except ValueError:
        pass
    if ":" in candidate or host != candidate:
        return f"{host[:60]!r} is neither a host name nor an IP address."
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        return f"{host[:60]!r} is not a valid IPv4 address."
    if not all(_LABEL.match(label) for label in labels):
        return (
            f"{host[:60]!r} is not a valid host name: use letters, digits and hyphens, "
            "with dots between the parts."
        )
    return None


def ws_url_problem(value: str) -> str | None:
    """None for a ws:// or wss:// URL with a valid host and no query or fragment; else why not."""
    expected = f"Enter a ws:// or wss:// address, e.g. {WS_URL_EXAMPLE}"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"{expected} (the port must be a number from 1 to 65535)."
    if parts.scheme not in ("ws", "wss"):
        return f"{expected}." if not parts.scheme else f"{expected} ({parts.scheme}:// is not a WebSocket address)."
    if not parts.netloc or not parts.hostname:
        return f"{expected} (the host is missing)."
    host = parts.netloc.rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if port is not None or host.endswith(":") else host
    problem = host_problem(host)
    if problem is not None:
        return f"The host in this address is not valid. {problem}"
    if port == 0:
        return f"{expected} (the port must be a number from 1 to 65535)."
    if any(character.isspace() for character in value):
        return "A WebSocket address cannot contain spaces."
    if parts.query or parts.fragment:
        return "Enter the address without ?query or #fragment: the charger's id is added to its path."
    return None
