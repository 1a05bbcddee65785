"""The log stream: one JSON object per line, however many workers share the stream."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog

from proxy.logs import configure_logging


class Writes(io.StringIO):
    """A stream that remembers each write() call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)


@pytest.fixture
def saved_config():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_each_record_is_one_write_that_ends_the_line(
    saved_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers share one stderr: a line written in two pieces (text, then newline) can
    # have another worker's line between the pieces, and neither parses any more.
    stream = Writes()
    monkeypatch.setattr(sys, "stderr", stream)  # here: pytest resets it between phases
    configure_logging("json", "info")
    log = structlog.get_logger("dmgate.test")
    log.info("policy_reloaded", reason="SIGHUP", version="abc")
    log.warning("long", detail="x" * 20_000)
    assert len(stream.calls) == 2
    for call in stream.calls:
        assert call.endswith("\n") and call.count("\n") == 1
        json.loads(call)


@pytest.fixture
def saved_logging():
    root = logging.getLogger()
    migrations = logging.getLogger("alembic.runtime.migration")
    saved = (root.handlers[:], root.level, migrations.handlers[:], migrations.level)
    yield
    root.handlers, migrations.handlers = saved[0], saved[2]
    root.setLevel(saved[1])
    migrations.setLevel(saved[3])
    migrations.propagate = True


def test_library_logging_comes_out_as_json_whoever_configured_it(
    saved_config: None, saved_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = Writes()
    monkeypatch.setattr(sys, "stderr", stream)
    logging.basicConfig(level=logging.INFO)  # what a library may do at import (before)
    configure_logging("json", "info")
    logging.basicConfig(level=logging.INFO)  # ... or after: a no-op now
    logging.getLogger("somelib").warning("token %s refused", "s3cr3t-value")
    logging.getLogger("somelib").info("chatter")  # below WARNING: dropped
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl %s.", "SQLiteImpl")  # at every start: not worth a line
    migration.info("Running upgrade %s -> %s, %s", "0010", "0011", "re-key")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["library_error", "migration"]
    assert records[0]["logger"] == "somelib" and "s3cr3t" not in stream.getvalue()
    assert records[1]["message"] == "Running upgrade 0010 -> 0011, re-key"
