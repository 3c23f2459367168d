"""Run LinkRay the way an operator does: `manage.py serve` as a subprocess on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"LinkRay listening on http://[^:]+:(\d+)/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LinkRayProcess:
    def __init__(self, env: dict[str, str], data_dir: Path, port: int | None = None):
        self.env = env
        self.data_dir = data_dir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "linkray.log"
        self._log_offset = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LinkRayProcess:
        env = {**os.environ, **self.env, "LINKRAY_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"linkray exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if _LISTENING.search(self.log()):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"linkray did not start in {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode("utf-8", errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a power cut as far as LinkRay can tell."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> LinkRayProcess:
        self.stop()
        return self.start()


def api_call(base_url: str, token: str, charge_box_id: str, action: str, payload: dict) -> dict:
    """`POST /api/chargers/<id>/calls` as an integrator's script sends it."""
    request = urllib.request.Request(
        f"{base_url}/api/chargers/{charge_box_id}/calls",
        data=json.dumps({"action": action, "payload": payload}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
