"""Parse settings out of an environment mapping.

Pure: the caller passes the mapping, so these are testable without touching os.environ.
Every parser fails loudly with the variable's name and value; a bad setting must stop
startup, not surface later as odd behaviour.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from linkray_site.addresses import ws_url_problem  # noqa: F401 - also the model field's validator




class EnvError(ValueError):
    """A configuration variable holds a value we cannot use."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, default).strip()


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in env:
        return default
    value = env[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise EnvError(f"{name}={env[name]!r}: expected one of yes/no, true/false, on/off, 1/0")


def env_int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None
) -> int:
    if name not in env or not env[name].strip():
        return default
    try:
        value = int(env[name].strip())
    except ValueError:
        raise EnvError(f"{name}={env[name]!r}: expected a whole number") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={env[name]!r}: must be at least {minimum}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None
) -> float:
    if name not in env or not env[name].strip():
        return default
    try:
        value = float(env[name].strip())
    except ValueError:
        raise EnvError(f"{name}={env[name]!r}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise EnvError(f"{name}={env[name]!r}: expected a finite number")
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={env[name]!r}: must be at least {minimum}")
    return value


def env_list(env: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    if name not in env:
        return list(default)
    return [item.strip() for item in env[name].split(",") if item.strip()]


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise EnvError(f"{name}={env.get(name)!r}: expected one of {', '.join(choices)}")
    return value


def env_ws_url(env: Mapping[str, str], name: str) -> str:
    """A ws:// or wss:// base URL, or '' when unset."""
    value = env.get(name, "").strip()
    if not value:
        return ""
    validate_ws_url(value, name)
    return value


def validate_ws_url(value: str, name: str = "URL") -> None:
    """EnvError `NAME='value': <what to enter instead>` unless `value` is a usable ws(s) URL."""
    problem = ws_url_problem(value)
    if problem is not None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise EnvError(f"{name}={shown!r}: {problem}")


def env_log_level(env: Mapping[str, str], name: str, default: str) -> str:
    return env_choice(env, name, default.lower(), ("debug", "info", "warning", "error", "critical")).upper()


def env_networks(env: Mapping[str, str], name: str) -> list:
    """Comma-separated addresses or networks (`127.0.0.1, 10.0.0.0/8, ::1`); empty when unset."""
    networks = []
    for item in env_list(env, name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise EnvError(f"{name}={env.get(name)!r}: {item!r} is not an IP address or network") from None
    return networks
