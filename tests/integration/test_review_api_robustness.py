"""Bad input and store outages on dmgate's own endpoints (the review API and webhooks),
against a real `dmgate serve`: every refusal is dmgate's JSON error (400, 413, 422 only for
a reject without a reason), never a 500, and nothing changes; a locked (SQLite) or
unreachable (PostgreSQL) store is a 503 `store_unavailable` on every endpoint, and
everything works again once the store is back.

Runs on both backends: `DMGATE_TEST_BACKEND=postgresql python -m pytest <this file>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import pytest
from sqlalchemy import exc as sa_exc

from proxy.store.errors import is_store_outage, is_unstorable_value
from tests.integration.conftest import BACKEND, sqlite_only
from tests.integration.dm_helpers import (
    SENDER,
    SENDER_TOKEN,
    TEMPLATE_ONLY,
    bearer,
    pitch,
    send_dm,
)
from tests.support import DMGate, free_port, wait_until

WEBHOOK_SECRET = "consumer-secret-for-webhooks"
VALID = {
    "approve": {"note": "looks fine"},
    "reject": {"reason": "a pitch to a new follower"},
    "follow": {"platform": "x", "account": SENDER, "follower": "900"},
}


@pytest.fixture
def start_gate(dmgate_factory, fake_x) -> Callable[..., DMGate]:
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)  # a known sender: only templates hold

    def start(**env: str) -> DMGate:
        return dmgate_factory(
            policy_yaml=TEMPLATE_ONLY,
            env={"DMGATE_WEBHOOK_SECRETS": json.dumps({"x": WEBHOOK_SECRET}), **env},
        )

    return start


@pytest.fixture
def gate(start_gate) -> DMGate:
    return start_gate()


def _holds(gate: DMGate, n: int) -> list[str]:
    """n pending holds (each the 3rd+ copy of a template)."""
    ids = []
    for i in range(n + 2):
        r = send_dm(gate.client, str(600 + i), pitch(i))
        if r.headers["DMGate-Decision"] == "hold":
            ids.append(r.headers["DMGate-Hold-Id"])
    assert len(ids) == n
    return ids


def _paths(hold_id: str) -> dict[str, str]:
    return {
        "approve": f"/api/v1/holds/{hold_id}/approve",
        "reject": f"/api/v1/holds/{hold_id}/reject",
        "follow": "/api/v1/follow-events",
    }


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).digest()
    return {"x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode()}


def _follow_webhook(follower: str) -> bytes:
    event = {
        "type": "follow",
        "created_timestamp": str(int(time.time() * 1000)),
        "target": {"id": SENDER},
        "source": {"id": follower},
    }
    return json.dumps({"for_user_id": SENDER, "follow_events": [event]}).encode()


def _is_dmgate_error(r: httpx.Response, status: int, code: str) -> bool:
    try:
        doc = r.json()
    except ValueError:
        return False
    return (
        r.status_code == status
        and r.headers["Content-Type"].startswith("application/json")
        and doc.get("source") == "dmgate"
        and doc.get("error") == code
        and isinstance(doc.get("detail"), str)
    )


def _bad_bodies(endpoint: str) -> list[tuple[str, bytes, str]]:
    """(what, body, content type) that must each be a 400 bad_request on `endpoint`."""
    valid = VALID[endpoint]
    field = next(iter(valid))
    as_json = json.dumps(valid).encode()
    marked = json.dumps({**valid, field: "MARK"}).encode()  # MARK: where raw bytes go
    bodies = [
        ("invalid UTF-8 in a string", marked.replace(b"MARK", b"ok\xff\xfe"), "application/json"),
        ("invalid UTF-8 only", b"\xff\xfe\xfd", "application/json"),
        ("a UTF-8 BOM", b"\xef\xbb\xbf" + as_json, "application/json"),
        ("not JSON", b"reason=spam", "application/json"),
        ("truncated JSON", as_json[:-1], "application/json"),
        ("trailing garbage", as_json + b" {}", "application/json"),
        ("a JSON array", json.dumps([valid]).encode(), "application/json"),
        ("a JSON string", b'"spam"', "application/json"),
        ("JSON null", b"null", "application/json"),
        ("a JSON number", b"42", "application/json"),
        ("NaN", json.dumps({**valid, field: "NaN"}).replace('"NaN"', "NaN").encode(), ""),
        ("a lone surrogate", marked.replace(b"MARK", b"\\ud800"), "application/json"),
        ("a NUL character", json.dumps({**valid, field: "a\x00b"}).encode(), "application/json"),
        ("100000 [", b"[" * 100_000, "application/json"),
        ("100000 {", b'{"a":' * 20_000, "application/json"),
        ("deep but closed", b"[" * 5000 + b"]" * 5000, "application/json"),
        ("deep inside an object", b'{"note": ' + b"[" * 3000 + b"]" * 3000 + b"}", ""),
        ("an unknown field", json.dumps({**valid, "bogus": 1}).encode(), "application/json"),
        ("form encoded", b"reason=spam&note=x", "application/x-www-form-urlencoded"),
        ("text/plain", as_json, "text/plain"),
    ]
    for wrong in (5, 1.5, True, [], {}, ["x"], {"a": "b"}):
        bodies.append((f"{field}={wrong!r}", json.dumps({**valid, field: wrong}).encode(), ""))
    if endpoint == "follow":
        for when in (
            "yesterday",
            "2026-01-31",
            "2026-01-31 12:00:00Z",
            "2026-01-31T12:00:00",  # no time zone
            "2026-13-01T00:00:00Z",
            1769860800,
        ):
            body = json.dumps({**valid, "followed_at": when}).encode()
            bodies.append((f"followed_at={when!r}", body, "application/json"))
        bodies.append(
            ("platform too long", json.dumps({**valid, "platform": "x" * 33}).encode(), "")
        )
        bodies.append(("follower blank", json.dumps({**valid, "follower": " \t"}).encode(), ""))
        bodies.append(("missing fields", b"{}", "application/json"))
    if endpoint == "approve":
        bodies.append(("text empty", b'{"text": ""}', "application/json"))
        bodies.append(("text too long", json.dumps({"text": "x" * 10_001}).encode(), ""))
    if endpoint == "reject":
        bodies.append(("reason too long", json.dumps({"reason": "x" * 2001}).encode(), ""))
    return bodies


def test_malformed_bodies_are_400_and_change_nothing(gate):
    approve_id, reject_id = _holds(gate, 2)
    review = gate.review()
    for endpoint in ("approve", "reject", "follow"):
        hold_id = approve_id if endpoint == "approve" else reject_id
        path = _paths(hold_id)[endpoint]
        for what, body, ctype in _bad_bodies(endpoint):
            headers = {"Content-Type": ctype} if ctype else {}
            r = review.post(path, content=body, headers=headers)
            assert _is_dmgate_error(r, 400, "bad_request"), (endpoint, what, r.status_code, r.text)
    for hold_id in (approve_id, reject_id):
        assert review.get(f"/api/v1/holds/{hold_id}").json()["status"] == "pending"
    assert "internal_error" not in gate.logs()
    # The same endpoints still work.
    assert review.post(f"/api/v1/holds/{reject_id}/reject", json=VALID["reject"]).status_code == 200
    assert review.post("/api/v1/follow-events", json=VALID["follow"]).status_code == 201


def test_reject_without_a_reason_is_422(gate):
    (hold_id,) = _holds(gate, 1)
    review = gate.review()
    path = f"/api/v1/holds/{hold_id}/reject"
    for kwargs in (
        {},
        {"json": {}},
        {"json": {"note": "no reason"}},
        {"json": {"reason": ""}},
        {"json": {"reason": " \n\u3000"}},
        {"json": {"reason": None}},
    ):
        r = review.post(path, **kwargs)
        assert _is_dmgate_error(r, 422, "unprocessable"), (kwargs, r.text)
    assert review.get(f"/api/v1/holds/{hold_id}").json()["status"] == "pending"


def test_huge_bodies_are_413(gate):
    (hold_id,) = _holds(gate, 1)
    review = gate.review()
    huge = b'{"note": "' + b"x" * (4 * 1024 * 1024) + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while reading
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    for path in _paths(hold_id).values():
        for content in (huge, chunks()):
            r = review.post(path, content=content, headers={"Content-Type": "application/json"})
            assert _is_dmgate_error(r, 413, "payload_too_large"), (path, r.status_code, r.text)
    r = gate.client.post("/webhooks/x", content=huge, headers=_signed(huge))
    assert _is_dmgate_error(r, 413, "payload_too_large"), r.text
    assert review.get(f"/api/v1/holds/{hold_id}").json()["status"] == "pending"


def test_bad_query_parameters_and_ids(gate):
    review = gate.review()
    for params in (
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "-1"},
        {"limit": "x"},
        {"limit": ""},
        {"limit": "1e3"},
        {"limit": " 5"},
        {"limit": "+5"},
        {"limit": "1_0"},
        {"limit": "\u0665"},  # an Arabic-Indic 5: int() would take it
        {"limit": "9" * 400},
        {"limit": ["1", "2"]},
        {"status": "bogus"},
        {"status": ""},
        {"status": "PENDING"},
        {"status": "\x00"},
        {"cursor": "zz"},
        {"cursor": ""},
        {"cursor": "\x00"},
        {"cursor": "A" * 32},
        {"cursor": "0" * 31},
        {"cursor": "é" * 32},
    ):
        r = review.get("/api/v1/holds", params=params)
        assert _is_dmgate_error(r, 400, "bad_request"), (params, r.status_code, r.text)
    for raw in ("limit=%ff", "cursor=%ff%fe", "status=%00", "cursor=%ED%A0%80" * 1):
        r = review.get(f"/api/v1/holds?{raw}")
        assert _is_dmgate_error(r, 400, "bad_request"), (raw, r.status_code, r.text)
    assert review.get("/api/v1/holds", params={"limit": "500"}).status_code == 200
    for bad_id in ("nope", "%00", "%ff", "A" * 32, "0" * 33, "x" * 2000, "'; DROP TABLE holds"):
        for method, suffix, body in (
            ("GET", "", None),
            ("POST", "/approve", {}),
            ("POST", "/reject", {"reason": "x"}),
        ):
            r = review.request(method, f"/api/v1/holds/{bad_id}{suffix}", json=body)
            assert _is_dmgate_error(r, 404, "not_found"), (bad_id, suffix, r.status_code, r.text)
    assert "internal_error" not in gate.logs()


def test_bad_requests_without_a_token_are_401_first(gate):
    for method, path, body in (
        ("GET", "/api/v1/holds?limit=x", None),
        ("POST", "/api/v1/holds/nope/approve", b"\xff"),
        ("POST", "/api/v1/follow-events", b"[" * 1000),
    ):
        for auth in (None, b"Bearer \xff\xfe\xed\xa0\x80", "Bearer " + "x" * 5000):
            headers = {"Authorization": auth} if auth else {}
            r = gate.client.request(method, path, content=body, headers=headers)
            assert _is_dmgate_error(r, 401, "unauthorized"), (path, auth, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_methods_are_405_with_allow(gate):
    review = gate.review()
    for path, allow in (
        ("/api/v1/holds", "GET, HEAD, OPTIONS"),
        ("/api/v1/holds/0123456789abcdef0123456789abcdef", "GET, HEAD, OPTIONS"),
        ("/api/v1/holds/0123456789abcdef0123456789abcdef/approve", "POST, OPTIONS"),
        ("/api/v1/follow-events", "POST, OPTIONS"),
        ("/api/openapi.json", "GET, HEAD, OPTIONS"),
    ):
        for method in ("PUT", "DELETE", "PATCH", "TRACE", "POST" if "GET" in allow else "GET"):
            r = review.request(method, path)
            assert _is_dmgate_error(r, 405, "method_not_allowed"), (method, path, r.text)
            assert r.headers["Allow"] == allow
        r = review.request("OPTIONS", path)
        assert r.status_code == 204 and r.headers["Allow"] == allow


def test_webhooks_never_fail_on_odd_bodies(gate):
    odd = [
        b"",
        b"\xff\xfe\xfd",
        b"not json",
        b"[1, 2]",
        b"null",
        b"[" * 100_000,
        b'{"for_user_id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        json.dumps({"for_user_id": SENDER, "follow_events": "nope"}).encode(),
        json.dumps({"for_user_id": SENDER, "follow_events": [None, 1, {"type": 5}]}).encode(),
        _follow_webhook("3\x00"),
        _follow_webhook("9" * 300),
        _follow_webhook("é"),
    ]
    for body in odd:
        r = gate.client.post("/webhooks/x", content=body, headers=_signed(body))
        assert r.status_code == 200, (body[:40], r.status_code, r.text)
        unsigned = gate.client.post("/webhooks/x", content=body)
        assert _is_dmgate_error(unsigned, 401, "unauthorized"), (body[:40], unsigned.text)
    for query in ("crc_token=%ff%fe", "crc_token=%ED%A0%80", "crc_token=" + "x" * 4000, "x=1"):
        r = gate.client.get(f"/webhooks/x?{query}")
        assert r.status_code in (200, 404), (query, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
    r = gate.client.post("/webhooks/nowhere", content=b"{}")
    assert _is_dmgate_error(r, 404, "not_found")
    assert "internal_error" not in gate.logs()


# --- store outages ----------------------------------------------------------------------


def _driver_error(sqlstate: str) -> Exception:
    """What SQLAlchemy's asyncpg dialect raises: a DBAPIError whose `orig` has the SQLSTATE."""
    orig = type("AsyncpgError", (Exception,), {"sqlstate": sqlstate})("boom")
    return sa_exc.DBAPIError("SELECT 1", None, orig)


def _raised_from(module: str, exc: Exception) -> Exception:
    """`exc` as raised by code of `module` (the middleware looks at where an OSError came from)."""
    scope: dict[str, Any] = {"__name__": module, "exc": exc}
    try:
        exec("raise exc", scope)
    except Exception as raised:
        return raised
    raise AssertionError("not raised")


@pytest.mark.parametrize(
    "exc,outage",
    [
        (sa_exc.OperationalError("BEGIN IMMEDIATE", None, Exception("database is locked")), True),
        (sa_exc.InterfaceError("SELECT 1", None, Exception("connection is closed")), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (_driver_error("57P01"), True),  # terminating connection due to administrator command
        (_driver_error("57P03"), True),  # the database system is starting up
        (_driver_error("08006"), True),  # connection failure
        (_driver_error("53300"), True),  # too many connections
        (_driver_error("22001"), False),  # value too long: dmgate's bug, not an outage
        (sa_exc.IntegrityError("INSERT", None, Exception("UNIQUE constraint failed")), False),
        (sa_exc.ProgrammingError("SELEC", None, Exception("syntax error")), False),
        (_raised_from("asyncpg.connect_utils", ConnectionRefusedError(111, "refused")), True),
        (_raised_from("proxy.store.holds", TimeoutError()), True),
        (_raised_from("proxy.relay", ConnectionResetError(104, "reset by peer")), False),
        (_raised_from("asyncpg.protocol", aiohttp.ClientOSError(104, "reset")), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_are_store_outages(exc, outage):
    assert is_store_outage(exc) is outage


def test_unstorable_values_are_told_apart():
    assert is_unstorable_value(_driver_error("22021"))  # NUL in text
    assert is_unstorable_value(sa_exc.DataError("INSERT", None, Exception("too long")))
    assert not is_unstorable_value(_driver_error("57P01"))
    assert not is_unstorable_value(sa_exc.IntegrityError("INSERT", None, Exception("dup")))


def _write_calls(gate: DMGate, approve_id: str, reject_id: str) -> dict[str, Callable[[], Any]]:
    review = gate.review()
    hook = _follow_webhook("901")
    return {
        "dm": lambda: send_dm(gate.client, "777", "a message while the store is out of reach"),
        "approve": lambda: review.post(f"/api/v1/holds/{approve_id}/approve", json={}),
        "reject": lambda: review.post(f"/api/v1/holds/{reject_id}/reject", json=VALID["reject"]),
        "follow-events": lambda: review.post("/api/v1/follow-events", json=VALID["follow"]),
        "webhook": lambda: gate.client.post("/webhooks/x", content=hook, headers=_signed(hook)),
    }


def _read_calls(gate: DMGate, hold_id: str) -> dict[str, Callable[[], Any]]:
    review = gate.review()
    return {
        "list": lambda: review.get("/api/v1/holds", params={"status": "pending"}),
        "get": lambda: review.get(f"/api/v1/holds/{hold_id}"),
    }


def _all_at_once(calls: dict[str, Callable[[], Any]]) -> dict[str, httpx.Response]:
    # Together: each write waits out SQLite's busy timeout, and they can wait in parallel.
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def _store_unavailable_logged(gate: DMGate) -> list[dict[str, Any]]:
    return [r for r in gate.log_records() if r.get("event") == "store_unavailable"]


def _still_flowing(gate: DMGate, fake_x: Any, forwarded_before: int) -> None:
    """During the outage: no DM reached the platform; pass-through and signal requests
    (whose facts are learnt best effort) are still answered by the platform."""
    sent = [r for r in fake_x.state.requests[forwarded_before:] if "/dm_conversations" in r.path]
    assert sent == []
    assert gate.client.get("/x/_test/echo/still-flowing").status_code == 200
    me = gate.client.get("/x/2/users/me", headers=bearer())
    assert me.status_code == 200, me.text
    assert me.json()["data"]["id"] == SENDER


@sqlite_only
def test_locked_sqlite_store_is_503_on_every_write(start_gate, fake_x):
    # No expiry sweep during the test: it would wait for the lock in one of the store's
    # few threads.
    gate = start_gate(DMGATE_EXPIRY_INTERVAL="1h")
    approve_id, reject_id = _holds(gate, 2)
    before = len(fake_x.state.requests)
    lock = sqlite3.connect(gate.tmp / "dmgate.db", timeout=1)
    lock.execute("BEGIN EXCLUSIVE")  # a stuck backup job holding the write lock
    try:
        answers = _all_at_once(_write_calls(gate, approve_id, reject_id))
        for name, r in answers.items():
            assert _is_dmgate_error(r, 503, "store_unavailable"), (name, r.status_code, r.text)
        # WAL readers never wait for the writer: reviewers can still read.
        for name, r in _all_at_once(_read_calls(gate, approve_id)).items():
            assert r.status_code == 200, (name, r.text)
        _still_flowing(gate, fake_x, before)
    finally:
        lock.rollback()
        lock.close()
    assert gate.metric("dmgate_store_failures_total") == len(answers)
    logged = _store_unavailable_logged(gate)
    assert len(logged) == len(answers)
    assert {r["error"] for r in logged} == {"OperationalError"}  # the type, no SQL, no message
    assert "database is locked" not in gate.logs()
    _works_again(gate, approve_id, reject_id)


def _works_again(gate: DMGate, approve_id: str, reject_id: str) -> None:
    review = gate.review()
    assert review.get(f"/api/v1/holds/{approve_id}").json()["status"] == "pending"
    assert review.post(f"/api/v1/holds/{approve_id}/approve", json={}).json()["status"] == "sent"
    r = review.post(f"/api/v1/holds/{reject_id}/reject", json=VALID["reject"])
    assert r.json()["status"] == "rejected"
    assert review.post("/api/v1/follow-events", json=VALID["follow"]).status_code == 201
    hook = _follow_webhook("902")
    assert gate.client.post("/webhooks/x", content=hook, headers=_signed(hook)).status_code == 200
    r = send_dm(gate.client, "778", "and a message once the store is back")
    assert r.status_code == 201 and r.headers["DMGate-Decision"] == "allow", r.text
    assert "internal_error" not in gate.logs()


class TcpRelay:
    """A TCP relay in front of PostgreSQL that a test can cut (refuse new connections,
    reset open ones) and restore on the same port: an outage of one dmgate's database that
    leaves the shared server, and other tests using it, alone."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:  # RST, as when the server or the network goes away
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL backend only")
def test_unreachable_postgresql_is_503_on_every_endpoint(start_gate, database_url, fake_x):
    parts = urlsplit(database_url)
    relay = TcpRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = (
        f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else f"127.0.0.1:{relay.port}"
    )
    try:
        gate = start_gate(DMGATE_DATABASE_URL=urlunsplit(parts._replace(netloc=netloc)))
        approve_id, reject_id = _holds(gate, 2)
        before = len(fake_x.state.requests)
        relay.cut()
        calls = {**_write_calls(gate, approve_id, reject_id), **_read_calls(gate, approve_id)}
        for name, call in calls.items():
            r = call()
            assert _is_dmgate_error(r, 503, "store_unavailable"), (name, r.status_code, r.text)
        assert gate.client.get("/readyz").status_code == 503
        _still_flowing(gate, fake_x, before)
        assert gate.metric("dmgate_store_failures_total") == len(calls)
        assert len(_store_unavailable_logged(gate)) == len(calls)
        relay.restore()
        wait_until(
            lambda: httpx.get(gate.url + "/readyz").status_code == 200,
            timeout=30,
            what="dmgate ready again",
        )
        _works_again(gate, approve_id, reject_id)
    finally:
        relay.cut()
