"""Tricks against the gate that need a real `dmgate serve` process: timeouts measured on
a raw socket, and what reaches the process's log (the decision line, parse errors, the
account header). Everything that is request and response, on every platform, runs in
process: tests/inprocess/test_adversarial.py.

The policy holds a DM to someone who followed within the hour: the recipient below has
just followed the sender, so any DM that reaches the fake without being held was not judged.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer
from tests.support import DMGate, wait_until

POLICY = """
policies:
  follow_timing: {action: hold, window: 1h}
"""
FOLLOWER = "42"
X_DM_PATH = f"/x/2/dm_conversations/with/{FOLLOWER}/messages"


@pytest.fixture
def gate(dmgate_factory, fake_x) -> DMGate:
    gate = dmgate_factory(
        env={"DMGATE_CLIENT_BODY_TIMEOUT": "1s", "DMGATE_CLIENT_HANDSHAKE_TIMEOUT": "1s"},
        policy_yaml=POLICY,
    )
    r = gate.review().post(
        "/api/v1/follow-events",
        json={"platform": "x", "account": SENDER, "follower": FOLLOWER},
    )
    assert r.status_code in (200, 201, 204), r.text
    return gate


def post_dm(
    gate: DMGate, extra: dict[str, str] | None = None, text: str = "Thanks for the follow!"
) -> httpx.Response:
    return gate.client.post(
        X_DM_PATH,
        content=json.dumps({"text": text}).encode(),
        headers={**bearer(), "Content-Type": "application/json", **(extra or {})},
    )


# --- who is sending: the log line ------------------------------------------------------------


def test_the_account_header_never_overrides_the_verified_sender(gate, fake_x):
    before = len(fake_x.state.sent)
    r = post_dm(gate, {"DMGate-Account": "999"})
    # Judged as SENDER (verified through /2/users/me), whom FOLLOWER just followed.
    assert r.headers["DMGate-Decision"] == "hold", r.text
    assert len(fake_x.state.sent) == before
    assert gate.metric("dmgate_account_header_mismatches_total", platform="x") == 1
    mismatch = [e for e in gate.log_records() if e.get("event") == "account_header_mismatch"]
    assert mismatch and mismatch[0]["verified"] == SENDER
    holds = gate.review().get("/api/v1/holds").json()["items"]
    assert {h["account"] for h in holds} == {SENDER}


# --- nothing leaks, nothing stalls -----------------------------------------------------------


def _raw(gate: DMGate, data: bytes, wait: float = 5.0, pause_after: int | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", gate.port), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_a_dm_body_must_arrive_in_time_but_pass_through_streams_may_take_longer(gate, fake_x):
    head = (
        f"POST {X_DM_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SENDER_TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = _raw(gate, head + b'{"text": "tri')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 4
    assert fake_x.state.sent == []

    def slow_upload() -> Iterator[bytes]:
        yield b"a" * 1000
        time.sleep(1.5)  # longer than the DM body timeout, on purpose
        yield b"b" * 1000

    r = gate.client.post("/x/_test/echo", content=slow_upload())
    assert r.status_code == 200, r.text
    assert r.json()["body_length"] == 2000


def test_a_request_head_must_arrive_in_time(gate):
    started = time.monotonic()
    answer = _raw(gate, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 4


def test_parse_errors_never_print_credentials(gate):
    secret = "Bearer sekrit-token-that-must-not-leak"
    cookie = "li_at=sekrit-cookie-that-must-not-leak"
    for bad in (
        f"POST {X_DM_PATH} HTTP/1.1\r\nAuthorization: {secret}\r\nCookie: {cookie}\r\n"
        "Content-Length: abc\r\n\r\n",
        f"GET /x/2/users/me HTTP/1.1\r\nAuthorization: {secret}\x01\r\nCookie: {cookie}\r\n\r\n",
    ):
        answer = _raw(gate, bad.encode())
        assert answer.split(b" ", 2)[1] == b"400", answer[:200]
    gate.client.get("/healthz")
    logs = gate.logs()
    assert "sekrit" not in logs, logs[-2000:]
    assert "Traceback" not in logs


def test_a_huge_dm_is_judged_on_a_capped_text_and_the_gate_stays_responsive(gate, fake_x):
    text = "word " * 180_000  # ~900 KB of text: far over any platform's limit
    r = post_dm(gate, text=text)
    assert r.headers["DMGate-Decision"] == "hold", r.text[:200]
    decision = next(e for e in gate.log_records() if e.get("event") == "dm_decision")
    # Judging 10,000 characters takes milliseconds; 900 KB took over a second.
    assert decision["evaluation_ms"] < 500, decision
    wait_until(lambda: gate.client.get("/healthz").status_code == 200)
