"""The log stream: one JSON object per line, however many workers share the stream."""

from __future__ import annotations

import io
import json
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
