"""Who may do what: the rights LinkRay checks and the roles that bundle them.

Pure: the page, the admin and the JSON API all ask `Principal.can(right)` with these names, so
one table decides for all three. Rights are Django permissions of the `accounts` app
(`accounts.<right>`); roles are Django groups of the same names, created by a migration.
"""

from __future__ import annotations

from dataclasses import dataclass

VIEW_SITE = "view_site"
OPERATE = "operate"
WRITE_SETPOINT = "write_setpoint"
ADMINISTER = "administer"

RIGHTS: dict[str, str] = {
    VIEW_SITE: "Read everything: chargers, meters, sessions, audit log",
    OPERATE: "Per-charger balancing, site limits, setpoints and actions on chargers",
    WRITE_SETPOINT: "Write the energy system's setpoint",
    ADMINISTER: "Users, API tokens, CSMS URL, meters and security settings",
}

VIEWER = "viewer"
OPERATOR = "operator"
ADMINISTRATOR = "administrator"
# Only for API tokens: an energy system (battery, PV, EMS) that writes setpoints and nothing else.
SETPOINT_ONLY = "setpoint"

ROLES: dict[str, frozenset[str]] = {
    VIEWER: frozenset({VIEW_SITE}),
    OPERATOR: frozenset({VIEW_SITE, OPERATE, WRITE_SETPOINT}),
    ADMINISTRATOR: frozenset({VIEW_SITE, OPERATE, WRITE_SETPOINT, ADMINISTER}),
}
TOKEN_ROLES: dict[str, frozenset[str]] = {**ROLES, SETPOINT_ONLY: frozenset({WRITE_SETPOINT})}
ALL_RIGHTS = frozenset(RIGHTS)


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever makes a request: a person (session) or an API client (token)."""

    kind: str  # "user" | "token"
    name: str  # username, or the token's name ("bootstrap" for LINKRAY_API_TOKEN)
    rights: frozenset[str]
    address: str = ""
    user_id: int | None = None
    token_id: int | None = None

    def can(self, right: str) -> bool:
        return right in self.rights

    @property
    def label(self) -> str:
        return self.name if self.kind == "user" else f"token:{self.name}"
