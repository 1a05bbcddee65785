"""Fixtures for in-process gateway tests: the real application (`proxy.app.build_app`),
served on loopback inside the test's own event loop by the listener `dmgate serve` uses
(`ProxySite`, same runner options), in front of fake upstreams served the same way.

    async def test_something(gate, fake_x): ...              # a default dmgate before fake_x
    async def test_other(gate_factory):
        gate = await gate_factory(env={"DMGATE_HOLD_TTL": "2s"}, policy_yaml=POLICY)
        gate = await gate_factory(clock=ManualClock())  # time moves when the test says

Everything the subprocess tier (tests/integration) checks through HTTP works the same here
— real sockets, the real store, real background loops — without a process start per test.
What needs a process stays there: kill -9 and restarts, signals, several replicas, what a
process prints to stderr or its log, timeouts measured on a raw socket.

Settings are given as the environment `dmgate serve` would read (`DMGATE_*` names, string
values), so a test reads the same in both tiers; the process's own DMGATE_* settings and
any `.env` file are ignored. The store is SQLite unless DMGATE_TEST_BACKEND=postgresql:
then each test gets a fresh PostgreSQL database (`tests/pg.py`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from proxy.app import build_app
from proxy.clock import Clock
from proxy.context import CTX, Context
from proxy.forward_mode.listener import ProxySite
from proxy.settings import Settings
from tests import pg
from tests.fakes.x_upstream import FakeX
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN
from tests.support import REVIEW_TOKENS, SECRET_KEY

BACKEND = os.environ.get("DMGATE_TEST_BACKEND", "sqlite")


@dataclass
class ServedFake:
    """A fake upstream's state and the loopback URL it is served on in this loop."""

    state: Any
    url: str


@dataclass
class Gate:
    """A dmgate application served in this event loop."""

    app: web.Application
    url: str
    port: int
    tmp: Path
    client: httpx.AsyncClient = field(init=False)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = self._new_client()

    @property
    def ctx(self) -> Context:
        return self.app[CTX]

    def _new_client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, timeout=30, headers=headers, trust_env=False)
        self._clients.append(client)
        return client

    def review(self, who: str = "alice") -> httpx.AsyncClient:
        """A client of the review API signed in as `who` (closed with the gate)."""
        return self._new_client({"Authorization": f"Bearer {REVIEW_TOKENS[who]}"})

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of this gate's metrics (0 if absent)."""
        value = self.ctx.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def close_clients(self) -> None:
        for client in self._clients:
            await client.aclose()


async def wait_until(
    predicate: Callable[[], Awaitable[Any]], seconds: float = 15.0, what: str = ""
) -> Any:
    """Poll until `await predicate()` is truthy (never sleep for readiness)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


async def serve(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, int]:
    """`app` on a free loopback port in this loop; stop it with `runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def fake_factory() -> AsyncIterator[Callable[[Any], Awaitable[ServedFake]]]:
    """Serve any fake's state (FakeX(), FakeMeta(), …) in this loop."""
    runners: list[web.AppRunner] = []

    async def start(state: Any) -> ServedFake:
        runner, port = await serve(state.app())
        runners.append(runner)
        return ServedFake(state, f"http://127.0.0.1:{port}")

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def fake_x(fake_factory: Callable[[Any], Awaitable[ServedFake]]) -> ServedFake:
    """The fake X, knowing the tools' own account: its OAuth 2.0 token is SENDER's."""
    state = FakeX()
    state.add_user(SENDER, token=SENDER_TOKEN)
    return await fake_factory(state)


def routes_to(upstream: str) -> str:
    """`DMGATE_ROUTES` sending `/x/…` (judged as X) and `/plain/…` (never judged) to
    `upstream`."""
    return json.dumps(
        {
            "x": {"upstream": upstream, "platform": "x"},
            "plain": {"upstream": upstream, "platform": "none"},
        }
    )


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str | None]:
    """The database every gate of this test shares: None = each its own SQLite file.
    (A plain fixture: it creates the database before the test's loop runs.)"""
    if BACKEND != "postgresql":
        yield None
        return
    yield from pg.fresh_database()


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes configures its gates: not this process's DMGATE_*."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"DMGATE_{name.upper()}", raising=False)


@pytest.fixture
async def gate_factory(
    tmp_path: Path, fake_x: ServedFake, database_url: str | None, isolated_settings: None
) -> AsyncIterator[Callable[..., Awaitable[Gate]]]:
    started: list[tuple[Gate, web.AppRunner]] = []

    async def start(
        env: dict[str, str] | None = None,
        policy_yaml: str | None = None,
        clock: Clock | None = None,
    ) -> Gate:
        home = tmp_path / f"dmgate-{len(started)}"
        home.mkdir()
        full = {
            "DMGATE_HOST": "127.0.0.1",
            "DMGATE_PORT": "0",
            "DMGATE_DATABASE_URL": database_url or f"sqlite:///{home / 'dmgate.db'}",
            "DMGATE_ROUTES": routes_to(fake_x.url),
            "DMGATE_LOG_FORMAT": "json",
            "DMGATE_REVIEW_TOKENS": ",".join(f"{k}:{v}" for k, v in REVIEW_TOKENS.items()),
            "DMGATE_SECRET_KEY": SECRET_KEY,
            "DMGATE_EXPIRY_INTERVAL": "1s",
            "DMGATE_POLICY_RELOAD_INTERVAL": "1s",
        }
        if policy_yaml is not None:
            policy = home / "policies.yaml"
            policy.write_text(policy_yaml)
            full["DMGATE_POLICY_FILE"] = str(policy)
        full.update(env or {})
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            **{k.removeprefix("DMGATE_").lower(): v for k, v in full.items()},
        )
        app = build_app(settings, clock)
        # As proxy.forward_mode.listener.run serves it (short shutdown: tests end idle).
        runner = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=False,
            shutdown_timeout=2.0,
            keepalive_timeout=settings.keepalive_timeout.total_seconds(),
        )
        await runner.setup()  # opens the store, starts the background loops
        try:
            site = ProxySite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        gate = Gate(app, f"http://127.0.0.1:{port}", port, home)
        started.append((gate, runner))
        return gate

    yield start
    for gate, runner in reversed(started):
        await gate.close_clients()
        await runner.cleanup()
    # Each start ends with gc.collect() + gc.freeze() (proxy/app.py), so cycles left by
    # earlier tests stay frozen (measured: +5 MB over 71 tests). Unfreezing here would
    # make every start's gc.collect() walk the whole test process instead (~90 ms each,
    # half the tier's time).


@pytest.fixture
async def gate(gate_factory: Callable[..., Awaitable[Gate]]) -> Gate:
    return await gate_factory()


sqlite_only = pytest.mark.skipif(
    BACKEND != "sqlite", reason="inspects or locks the SQLite database file itself"
)
