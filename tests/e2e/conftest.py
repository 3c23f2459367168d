"""The `stack` fixture: LinkRay as operators run it, on the embedded default and on the
scale-out configuration (the machine's real Redis and PostgreSQL)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.peers.csms import CsmsServer
from tests.peers.linkray import ROOT, LinkRayProcess

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/7"
# Per test run, so concurrent runs on one machine never drop each other's template.
_TEMPLATE_DB = f"linkray_e2e_template_{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_template():
    """A migrated PostgreSQL database that each scale-out test clones (fast, isolated)."""
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {_TEMPLATE_DB}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=_env({"DATABASE_URL": f"{POSTGRES}/{_TEMPLATE_DB}", "REDIS_URL": REDIS}),
        check=True,
    )
    yield _TEMPLATE_DB
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE_DB} WITH (FORCE)")


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


class Stack:
    """Everything one e2e test needs: a CSMS and a way to start LinkRay in front of it."""

    def __init__(self, kind: str, tmp_path: Path, base_env: dict[str, str]):
        self.kind = kind
        self.tmp_path = tmp_path
        self.base_env = base_env
        self.processes: list[LinkRayProcess] = []
        self.csms: CsmsServer | None = None

    async def start_csms(self, **kwargs) -> CsmsServer:
        self.csms = await CsmsServer(**kwargs).start()
        return self.csms

    def start_linkray(
        self, env: dict[str, str] | None = None, *, csms: CsmsServer | None = None, name: str = "a", port: int | None = None
    ) -> LinkRayProcess:
        csms = csms or self.csms
        merged = {
            "LINKRAY_CSMS_RECONNECT_MIN_S": "0.1",
            "LINKRAY_CSMS_RECONNECT_MAX_S": "0.5",
            "LINKRAY_CSMS_CONNECT_TIMEOUT_S": "3",
            "LINKRAY_JOURNAL_FLUSH_INTERVAL_S": "0.2",
            "LINKRAY_STATE_FLUSH_INTERVAL_S": "0.2",
            **self.base_env,
        }
        if csms is not None:
            merged["LINKRAY_CSMS_URL"] = csms.url
        merged.update(env or {})
        process = LinkRayProcess(merged, self.tmp_path / f"linkray-{name}", port=port)
        self.processes.append(process)
        return process.start()

    def manage(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a management command against this stack's data, as an operator would."""
        process = self.processes[0] if self.processes else None
        merged = {**(process.env if process else self.base_env), "LINKRAY_DATA_DIR": str(self.tmp_path / "linkray-a")}
        merged.update(env or {})
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=_env(merged), capture_output=True, text=True, timeout=timeout
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read LinkRay's database directly (SQLite file or PostgreSQL)."""
        if self.kind == "embedded":
            import sqlite3

            with sqlite3.connect(self.tmp_path / "linkray-a" / "linkray.sqlite3") as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.base_env["DATABASE_URL"]) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    def charger_state(self, charge_box_id: str) -> dict | None:
        """The charger's live model as LinkRay last persisted it (None before the first flush)."""
        rows = self.query("SELECT state FROM gateway_charger WHERE charge_box_id=%s", (charge_box_id,))
        if not rows or not rows[0][0]:
            return None
        return rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])

    async def close(self):
        for process in self.processes:
            process.stop()
        if self.csms is not None:
            await self.csms.stop()


@pytest.fixture(params=["embedded", "scaleout"])
async def stack(request, tmp_path):
    if request.param == "embedded":
        stack = Stack("embedded", tmp_path, {})
        yield stack
        await stack.close()
        return
    template = request.getfixturevalue("postgres_template")
    database = "linkray_e2e_" + secrets.token_hex(4)
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database} TEMPLATE {template}")
    stack = Stack(
        "scaleout",
        tmp_path,
        {"DATABASE_URL": f"{POSTGRES}/{database}", "REDIS_URL": REDIS, "LINKRAY_CHANNEL_PREFIX": database},
    )
    yield stack
    await stack.close()
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
