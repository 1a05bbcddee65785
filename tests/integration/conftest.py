"""Fixtures for integration tests: a fake X upstream and real `dmgate serve` processes.

    def test_something(dmgate, fake_x): ...                  # a default dmgate in front of fake_x
    def test_other(dmgate_factory):
        gate = dmgate_factory(env={"DMGATE_HOLD_TTL": "2s"}, policy_yaml=POLICY)

Every dmgate gets its own directory (`gate.tmp`: database, key, log, `policies.yaml`), and
routes `x` (platform x) and `plain` (platform "none": pass-through, never judged) to the
fake unless `env` says otherwise. Everything started is stopped at teardown, dmgate before the fake.

The store is SQLite unless `DMGATE_TEST_BACKEND=postgresql`: then each test gets a fresh
PostgreSQL database (`tests/pg.py`) shared by all the dmgates it starts — several replicas.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.fakes.x_upstream import FakeXThread
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN
from tests.support import DMGate

BACKEND = os.environ.get("DMGATE_TEST_BACKEND", "sqlite")


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
def fake_x() -> Iterator[FakeXThread]:
    """The fake X, knowing the tools' own account: its OAuth 2.0 token is SENDER's (dmgate
    asks `/2/users/me` who a new token belongs to, and holds DMs on tokens nobody names)."""
    with FakeXThread() as fake:
        fake.state.add_user(SENDER, token=SENDER_TOKEN)
        yield fake


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str | None]:
    """The database every dmgate of this test shares: None = each its own SQLite file."""
    if BACKEND != "postgresql":
        yield None
        return
    yield from pg.fresh_database()


@pytest.fixture
def dmgate_factory(
    tmp_path: Path, fake_x: FakeXThread, database_url: str | None
) -> Iterator[Callable[..., DMGate]]:
    started: list[DMGate] = []

    def start(env: dict[str, str] | None = None, policy_yaml: str | None = None) -> DMGate:
        home = tmp_path / f"dmgate-{len(started)}"
        home.mkdir()
        full = {"DMGATE_ROUTES": routes_to(fake_x.url)}
        if database_url is not None:
            full["DMGATE_DATABASE_URL"] = database_url
        if policy_yaml is not None:
            policy = home / "policies.yaml"
            policy.write_text(policy_yaml)
            full["DMGATE_POLICY_FILE"] = str(policy)
        full.update(env or {})
        gate = DMGate(home, full)
        started.append(gate)  # before start(): a gate that failed to start is still stopped
        return gate.start()

    yield start
    for gate in reversed(started):
        gate.stop()


@pytest.fixture
def dmgate(dmgate_factory: Callable[..., DMGate]) -> DMGate:
    return dmgate_factory()


sqlite_only = pytest.mark.skipif(
    BACKEND != "sqlite", reason="inspects or locks the SQLite database file itself"
)
