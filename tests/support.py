"""Test harness: a real `dmgate serve` process and a webhook receiver, on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
# At least 24 characters each: dmgate refuses shorter review tokens.
REVIEW_TOKENS = {"alice": "tok-alice-0123456789abcdefgh", "bob": "tok-bob-0123456789abcdefgh"}
SECRET_KEY = "test-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll until `predicate()` is truthy (never sleep for readiness)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}: {last_exc!r}")


class DMGate:
    """`dmgate serve` as a subprocess, configured by environment variables."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"dmgate-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")},
            "DMGATE_HOST": "127.0.0.1",
            "DMGATE_PORT": str(self.port),
            "DMGATE_DATABASE_URL": f"sqlite:///{tmp / 'dmgate.db'}",
            "DMGATE_LOG_FORMAT": "json",
            "DMGATE_LOG_LEVEL": "debug",
            "DMGATE_REVIEW_TOKENS": ",".join(f"{k}:{v}" for k, v in REVIEW_TOKENS.items()),
            "DMGATE_SECRET_KEY": SECRET_KEY,
            "DMGATE_EXPIRY_INTERVAL": "1s",
            "DMGATE_POLICY_RELOAD_INTERVAL": "1s",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> DMGate:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve"],
            env=self.env,
            cwd=self.tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, timeout=90, what=f"dmgate on {self.url}\n{self.logs()}")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dmgate exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        self.client = httpx.Client(base_url=self.url, timeout=30)
        if hasattr(self, "_log"):
            self._log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> DMGate:
        """Start again on the same port, database and settings (after stop or kill)."""
        self.stop()
        return self.start()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def review(self, who: str = "alice") -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {REVIEW_TOKENS[who]}"},
        )

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 if absent)."""
        text = httpx.get(self.url + "/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            sname, _, lbl = series.partition("{")
            if sname != name:
                continue
            got = ",".join(sorted(p for p in lbl.rstrip("}").split(",") if p))
            if got == want:
                return float(value)
        return 0.0


@dataclass
class ReceivedHook:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A review endpoint on loopback that records what it gets; can fail on purpose."""

    fail_first: int = 0
    port: int = 0
    received: list[ReceivedHook] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        self.received.append(ReceivedHook(dict(request.headers), body))
        return web.Response(status=204)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def _stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
