"""Pass-through fidelity and safety, through a real `dmgate serve` process.

What the tool sends reaches the upstream byte for byte (method, path, query, headers,
body) and what the upstream answers reaches the tool the same way, except hop-by-hop
headers, `Host` and dmgate's own `DMGate-*` request headers. Requests never reach a host
the client chose. Exact bytes are checked on raw sockets where an HTTP client would
normalise them first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.x_upstream import (
    GZIP_BODY,
    SET_COOKIES,
    X_MULTI,
    FakeXThread,
    Recorded,
    pattern_sha256,
)
from tests.support import DMGate, free_port

MiB = 1024 * 1024
BIG = 100 * MiB
# dmgate's peak RSS may grow by this much while it streams a 100 MiB body.
STREAMING_RSS_BUDGET = 40 * MiB


class RawServer:
    """A bare TCP listener on loopback. Records every connection's request head and,
    when given `answer`, replies with exactly those bytes and closes. Without an answer
    it is a canary: anything it records is a request that went where it must not."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.accepted = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, name=f"raw-{self.port}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                except OSError:
                    pass
                self.heads.append(head)
                if self.answer is not None:
                    conn.sendall(self.answer)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._sock.close()


def exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port; everything that comes back until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def get(target: bytes, *headers: bytes, method: bytes = b"GET", version: bytes = b"1.1") -> bytes:
    lines = [method + b" " + target + b" HTTP/" + version, b"Host: dmgate.test", *headers]
    if version == b"1.1":
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def parse(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    return int(status_line.split()[1]), headers, body


def names(headers: list[tuple[str, str]]) -> set[str]:
    return {k.lower() for k, _ in headers}


def dmgate_error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["source"] == "dmgate" and body["error"] == code, body
    return body


def peak_rss_reset(pid: int) -> int:
    """dmgate's RSS now, with its peak (VmHWM) reset to it; in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _proc_status(pid, "VmRSS")


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


# --- one dmgate for the whole module (starting one costs seconds) ----------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeXThread]:
    with FakeXThread() as fake:
        yield fake


@pytest.fixture(scope="module")
def raw_upstream() -> Iterator[RawServer]:
    """An upstream that answers with canned bytes (`.answer`), for answers an aiohttp
    server cannot be made to give."""
    server = RawServer(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gate(
    upstream: FakeXThread, raw_upstream: RawServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DMGate]:
    routes = {
        "x": {"upstream": upstream.url, "platform": "x"},
        "plain": {"upstream": upstream.url, "platform": "none"},
        "raw": {"upstream": f"http://127.0.0.1:{raw_upstream.port}", "platform": "none"},
        "closed": {"upstream": f"http://127.0.0.1:{free_port()}", "platform": "none"},
    }
    g = DMGate(tmp_path_factory.mktemp("passthrough"), {"DMGATE_ROUTES": json.dumps(routes)})
    g.start()
    yield g
    g.stop()


@pytest.fixture
def seen(upstream: FakeXThread) -> list[Recorded]:
    """What the fake upstream receives during this test."""
    upstream.state.requests.clear()
    return upstream.state.requests


@pytest.fixture
def canary() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def only(seen: list[Recorded]) -> Recorded:
    assert len(seen) == 1, [r.raw_path for r in seen]
    return seen[0]


# --- requests: method, target, headers, body --------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_every_method_arrives_with_its_body(gate, seen, method):
    body = b"" if method in ("GET", "HEAD", "OPTIONS") else f"body of {method}".encode()
    r = gate.client.request(method, "/plain/_test/echo/m", content=body)
    assert r.status_code == 200
    got = only(seen)
    assert (got.method, got.raw_path, got.body) == (method, "/_test/echo/m", body)
    if method == "HEAD":
        assert r.content == b""
    else:
        assert r.json()["method"] == method


# Odd but valid targets: percent-encoding in both cases, encoded slash and plus, sub-delims,
# repeated and empty keys, a bare `%` — none of it may be normalised on the way.
ODD_TARGETS = [
    b"/_test/echo?a=1&a=2&a=1&b=&c&d=%C3%A9&d=%c3%a9&e=%E2%82%AC&f=a+b%2Bc&g=%&h=%zz&i=/?;",
    b"/_test/echo/a%2Fb/%7e/%C3%A9;p=1/x+y/'!$&()*,=:@/%20?q=%F0%9F%98%80",
    b"/_test/echo//double//slashes/",
]


@pytest.mark.parametrize("target", ODD_TARGETS)
def test_path_and_query_arrive_byte_identical(gate, seen, target):
    status, _, _ = parse(exchange(gate.port, get(b"/plain" + target)))
    assert status == 200
    assert only(seen).raw_path == target.decode()


def test_non_ascii_query_from_an_http_client_arrives_as_the_client_encoded_it(gate, upstream, seen):
    params = [("q", "café ü"), ("q", "€ and +"), ("tag", "日本"), ("q", "")]
    direct = httpx.get(upstream.url + "/_test/echo", params=params).json()["path"]
    seen.clear()
    r = gate.client.get("/plain/_test/echo", params=params)
    assert r.status_code == 200
    assert only(seen).raw_path == direct
    assert "%C3%A9" in direct and direct.count("q=") == 3


def test_raw_utf8_in_the_request_line_is_refused_not_guessed_at(gate, seen):
    # RFC 3986 allows only percent-encoded octets; aiohttp's parser answers 400 itself.
    for target in (b"/plain/_test/echo?q=caf\xc3\xa9", b"/plain/_test/\xc3\xa9"):
        status, _, _ = parse(exchange(gate.port, get(target)))
        assert status == 400
    assert not seen


def test_a_fragment_in_the_request_line_is_not_forwarded(gate, seen):
    status, _, _ = parse(exchange(gate.port, get(b"/plain/_test/echo#frag?smuggled=1")))
    assert status == 200
    assert only(seen).raw_path == "/_test/echo"


def test_request_headers_arrive_in_order_and_nothing_is_added(gate, upstream, seen):
    sent = [
        ("X-Repeat", "1"),
        ("authorization", "Bearer secret-token"),
        ("X-Repeat", "2"),
        ("Cookie", "a=1; b=2"),
        ("X-Repeat", "3"),
        ("Accept", "application/json"),
    ]
    request = get(b"/plain/_test/echo", *(f"{k}: {v}".encode() for k, v in sent))
    status, _, _ = parse(exchange(gate.port, request))
    assert status == 200
    # Host first, then exactly what the tool sent: no User-Agent, Accept-Encoding, ...
    # (names compare case-insensitively: aiohttp's parser spells well-known ones its way)
    got = [(k.lower(), v) for k, v in only(seen).headers]
    assert got == [("host", f"127.0.0.1:{upstream.port}"), *((k.lower(), v) for k, v in sent)]


def test_non_ascii_header_values_pass_intact_or_not_at_all(gate, raw_upstream, seen):
    status, _, _ = parse(exchange(gate.port, get(b"/plain/_test/echo", b"X-Name: caf\xc3\xa9")))
    assert status == 200
    assert only(seen).header("X-Name") == "caf\xc3\xa9"  # the fake decodes as Latin-1
    # Not UTF-8: aiohttp would drop the byte, so dmgate refuses rather than alter it.
    status, _, body = parse(exchange(gate.port, get(b"/plain/_test/echo", b"X-Name: caf\xe9")))
    assert status == 400 and json.loads(body)["source"] == "dmgate"
    assert len(seen) == 1
    # In an answer the byte is kept as the Latin-1 character it stands for.
    raw_upstream.answer = (
        b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nX-B: caf\xc3\xa9\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n"
    )
    raw = exchange(gate.port, get(b"/raw/h"))
    assert b"\r\nX-A: caf\xc3\xa9\r\n" in raw and b"\r\nX-B: caf\xc3\xa9\r\n" in raw


def test_host_is_the_upstreams(gate, upstream, seen):
    r = gate.client.get("/x/_test/echo", headers={"Host": "api.x.com"})
    assert r.status_code == 200
    assert only(seen).header("Host") == f"127.0.0.1:{upstream.port}"


def test_hop_by_hop_and_dmgate_headers_are_dropped(gate, seen):
    request = get(
        b"/x/_test/echo",
        b"Connection: X-Foo, Keep-Alive",
        b"X-Foo: named-by-connection",
        b"Keep-Alive: timeout=5",
        b"TE: trailers",
        b"Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
        b"Proxy-Connection: keep-alive",
        b"Upgrade: h2c",
        b"DMGate-Account: 12345",
        b"dmgate-anything: x",
        b"X-Kept: yes",
    )
    status, _, _ = parse(exchange(gate.port, request))
    assert status == 200
    got = only(seen)
    assert names(got.headers) == {"host", "x-kept"}, got.headers


def test_binary_body_with_content_length_arrives_identical(gate, seen):
    body = os.urandom(3 * MiB + 7)
    r = gate.client.post("/plain/_test/echo", content=body)
    assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    got = only(seen)
    assert got.body == body
    assert got.header("Content-Length") == str(len(body))
    assert got.header("Transfer-Encoding") is None


def test_chunked_body_arrives_identical_and_stays_chunked(gate, seen):
    parts = [os.urandom(n) for n in (1, 4096, 70_000, 3)]
    r = gate.client.post("/plain/_test/echo", content=iter(parts))
    body = b"".join(parts)
    assert base64.b64decode(r.json()["body_b64"]) == body
    got = only(seen)
    assert got.header("Transfer-Encoding") == "chunked"
    assert got.header("Content-Length") is None


def test_expect_100_continue_upload(gate, seen):
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /plain/_test/echo HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    status, _, body = parse(out)
    assert status == 200
    assert json.loads(body)["body_b64"] == base64.b64encode(b"hello").decode()


# --- responses ----------------------------------------------------------------------------


def test_gzip_answer_passes_still_compressed(gate, seen):
    with gate.client.stream("GET", "/plain/_test/gzip", headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Length"] == str(len(GZIP_BODY))
    assert raw == GZIP_BODY
    assert only(seen).header("Accept-Encoding") == "gzip"


def test_repeated_response_headers_are_kept_in_order(gate, seen):
    r = gate.client.get("/plain/_test/headers")
    assert r.headers.get_list("Set-Cookie") == list(SET_COOKIES)
    assert r.headers.get_list("X-Multi") == list(X_MULTI)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_returned_not_followed(gate, seen, canary, code):
    location = f"http://127.0.0.1:{canary.port}/elsewhere"
    r = gate.client.post(f"/plain/_test/status/{code}", params={"location": location})
    assert r.status_code == code
    assert r.headers["Location"] == location
    assert len(seen) == 1
    assert canary.accepted == 0


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses_pass(gate, seen, code):
    r = gate.client.get(f"/plain/_test/status/{code}")
    assert (r.status_code, r.content) == (code, b"")


def test_dmgate_invents_no_content_type_or_server(gate, raw_upstream):
    raw_upstream.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Only: 1\r\nConnection: close\r\n\r\nhello"
    )
    status, headers, body = parse(exchange(gate.port, get(b"/raw/bare")))
    assert (status, body) == (200, b"hello")
    assert "content-type" not in names(headers) and "server" not in names(headers)
    assert ("X-Only", "1") in headers
    assert "date" in names(headers)  # RFC 9110 §6.6.1: a forwarder adds a missing Date


def test_close_delimited_answer_reaches_http_1_0_and_1_1_clients(gate, raw_upstream):
    raw_upstream.answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    status, headers, body = parse(exchange(gate.port, get(b"/raw/a", version=b"1.0")))
    assert (status, body) == (200, b"until the end")
    assert "transfer-encoding" not in names(headers)
    r = gate.client.get("/raw/a")
    assert (r.status_code, r.content) == (200, b"until the end")
    assert r.headers["Transfer-Encoding"] == "chunked"


def test_upstream_cut_in_a_small_answer_is_502_from_dmgate(gate, raw_upstream):
    # Small answers of known length are read whole before anything is sent, so a cut
    # can still be reported properly.
    raw_upstream.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly ten b"
    )
    dmgate_error(gate.client.get("/raw/cut"), 502, "upstream_unavailable")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_upstream_cut_in_a_streamed_answer_is_a_cut_for_the_tool_too(gate, raw_upstream, answer):
    raw_upstream.answer = answer
    with pytest.raises(httpx.TransportError), gate.client.stream("GET", "/raw/cut") as r:
        assert r.status_code == 200
        r.read()


# --- large bodies stream -----------------------------------------------------------------


def test_100_mib_download_streams(gate, seen):
    rss_before = peak_rss_reset(gate.proc.pid)
    digest, size = hashlib.sha256(), 0
    with gate.client.stream("GET", f"/plain/_test/bytes/{BIG}") as r:
        assert r.headers["Content-Length"] == str(BIG)
        for chunk in r.iter_raw(MiB):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (BIG, pattern_sha256(BIG))
    growth = _proc_status(gate.proc.pid, "VmHWM") - rss_before
    assert growth < STREAMING_RSS_BUDGET, f"dmgate's RSS grew by {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_100_mib_upload_streams(gate, seen, framing):
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    for i in range(100):
        expected.update(block[i:] + block[:i])

    def body() -> Iterator[bytes]:
        for i in range(100):
            yield block[i:] + block[:i]

    headers = {"Content-Length": str(BIG)} if framing == "content-length" else {}
    rss_before = peak_rss_reset(gate.proc.pid)
    r = gate.client.post("/plain/_test/upload", content=body(), headers=headers)
    assert r.json() == {"bytes": BIG, "sha256": expected.hexdigest()}
    growth = _proc_status(gate.proc.pid, "VmHWM") - rss_before
    assert growth < STREAMING_RSS_BUDGET, f"dmgate's RSS grew by {growth / MiB:.1f} MiB"
    got = only(seen)
    if framing == "content-length":  # the tool's length is kept, not turned into chunks
        assert (got.header("Content-Length"), got.header("Transfer-Encoding")) == (str(BIG), None)
    else:
        assert (got.header("Content-Length"), got.header("Transfer-Encoding")) == (None, "chunked")


# --- failures and refusals ------------------------------------------------------------------


def test_unreachable_upstream_is_502_from_dmgate(gate):
    body = dmgate_error(gate.client.get("/closed/anything"), 502, "upstream_unavailable")
    assert "closed" in str(body["detail"])


def test_slow_upstream_is_504_from_dmgate(dmgate_factory, fake_x):
    slow_gate = dmgate_factory(env={"DMGATE_UPSTREAM_READ_TIMEOUT": "1s"})
    started = time.monotonic()
    r = slow_gate.client.get("/plain/_test/slow", params={"seconds": "3"})
    dmgate_error(r, 504, "upstream_timeout")
    assert time.monotonic() - started < 2.5


def test_unknown_route_is_404_from_dmgate(gate, seen):
    dmgate_error(gate.client.get("/nosuchroute/_test/echo"), 404, "not_found")
    assert not seen


# --- requests never reach a host the client chose --------------------------------------


@pytest.mark.parametrize("route", [b"/plain", b"/x", b""])
def test_absolute_form_request_to_a_host_no_route_owns_is_refused(gate, seen, canary, route):
    target = f"http://127.0.0.1:{canary.port}".encode() + route + b"/_test/echo"
    status, _, body = parse(exchange(gate.port, get(target)))
    assert status == 403 and json.loads(body)["source"] == "dmgate"
    assert canary.accepted == 0 and not seen


@pytest.mark.parametrize(
    "target",
    [
        b"/x/../plain/_test/echo",
        b"/x/./../plain/_test/echo",
        b"/x/%2e%2e/plain/_test/echo",
        b"/x/%2E%2e/plain/_test/echo",
        b"/x/.%2e/plain/_test/echo",
        b"/x/%252e%252e/plain/_test/echo",
        b"/x/%25252e%25252e/plain/_test/echo",
        b"/x/..%2fplain/_test/echo",
        b"/x/..%5cplain/_test/echo",
        b"/x/_test/..",
    ],
)
def test_dot_segments_never_leave_the_route(gate, seen, target):
    status, _, body = parse(exchange(gate.port, get(target)))
    assert status == 400 and json.loads(body)["source"] == "dmgate"
    assert not seen


@pytest.mark.parametrize("prefix", [b"/x/@", b"/plain//", b"/plain/http://", b"/x/%40"])
def test_authority_lookalikes_stay_paths_on_the_configured_upstream(gate, seen, canary, prefix):
    rest = f"127.0.0.1:{canary.port}/_test/echo".encode()
    parse(exchange(gate.port, get(prefix + rest)))
    route_len = prefix.index(b"/", 1)
    assert only(seen).raw_path == (prefix[route_len:] + rest).decode()
    assert canary.accepted == 0


def test_connect_never_reaches_the_named_host(gate, seen, canary):
    authority = f"127.0.0.1:{canary.port}".encode()
    status, _, body = parse(exchange(gate.port, get(authority, method=b"CONNECT")))
    assert 400 <= status < 500 and json.loads(body)["source"] == "dmgate"
    assert canary.accepted == 0 and not seen


def test_connect_to_an_ip_address_is_refused_with_403(gate, canary):
    authority = f"127.0.0.1:{canary.port}".encode()
    status, _, body = parse(exchange(gate.port, get(authority, method=b"CONNECT")))
    assert status == 403 and "IP address" in json.loads(body)["detail"]


# --- metrics --------------------------------------------------------------------------------


def test_passthrough_requests_are_counted_per_route(gate, seen):
    def count(route: str) -> float:
        return gate.metric("dmgate_requests_total", route=route, kind="passthrough")

    plain, x = count("plain"), count("x")
    for _ in range(3):
        gate.client.get("/plain/_test/echo")
    gate.client.get("/x/_test/echo")
    exchange(gate.port, get(b"/plain/../x/_test/echo"))  # refused: counted nowhere
    assert (count("plain"), count("x")) == (plain + 3, x + 1)
