"""dmgate's own pass-through client (proxy/upstream_pool.py) against aiohttp's client, which
serves every other upstream request: for the same request the upstream must receive the
same bytes, and for the same answer the relay must get the same status, reason, headers
and body. Then what a pool must get right on its own: stale keep-alive connections,
timeouts, its connection limit, a client that goes away.

The upstreams here are raw asyncio servers on loopback, so that every byte is the test's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from proxy.errors import UpstreamUnavailable
from proxy.metrics import create_metrics
from proxy.relay import Relay, client_session
from proxy.upstream_pool import UpstreamAnswer, UpstreamClosed, UpstreamPool

Respond = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[bool]]


class RawUpstream:
    """Reads request heads (these requests have no body) and lets `respond(head, writer,
    n)` answer the n-th one; it returns False to close the connection afterwards."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.heads: list[bytes] = []
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    def url(self, target: str = "/") -> URL:
        return URL(f"http://127.0.0.1:{self.port}{target}", encoded=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                if not await self.respond(head, writer, len(self.heads)):
                    return
        finally:
            self.open -= 1
            writer.close()


def answering(raw: bytes, keep_alive: bool = False) -> Respond:
    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_alive

    return respond


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(limit=10, connect_timeout=2, read_timeout=2)
    yield p
    p.close()


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay(
        create_metrics(),
        lambda: client_session(10, 2, 2),
        lambda: UpstreamPool(10, 2, 2),
    )
    r.start()
    yield r
    await r.close()


# --- the same request, the same bytes ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "headers", "host"),
    [
        ("GET", "/2/users/me?user.fields=id%2Cname&x=%E2%9C%93", [], None),
        (
            "GET",
            "/a",
            [("Authorization", "Bearer t"), ("X-Repeat", "1"), ("X-Other", ""), ("X-Repeat", "2")],
            None,
        ),
        ("GET", "/caf%C3%A9", [("X-Name", "caf\u00e9"), ("Accept", "*/*")], None),
        ("DELETE", "/2/users/1/following/2", [("Authorization", "Bearer t")], None),
        ("DELETE", "/with-length", [("Content-Length", "0")], None),
        ("POST", "/2/users/1/likes", [], None),
        ("OPTIONS", "/", [("Origin", "https://tool.example")], None),
        ("PROPFIND", "/odd", [], None),
        ("GET", "/forward", [("Accept", "application/json")], "api.x.com"),
        ("GET", "/own-host", [("Accept", "*/*"), ("Host", "api.x.com")], None),
    ],
)
async def test_the_upstream_receives_what_aiohttps_client_sends(
    relay, pool, method, target, headers, host
):
    async with RawUpstream(answering(OK)) as upstream:
        url = upstream.url(target)
        async with await relay.send_by_aiohttp(
            "r", method, url, CIMultiDict(headers), host=host
        ) as r:
            await r.read()
        answer = await pool.request(method, url, CIMultiDict(headers), host)
        assert await answer.read() == b"ok"
    by_aiohttp, ours = upstream.heads
    assert ours == by_aiohttp


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/a", [("X-A", "1\r\nX-Injected: 1")]),
        ("/a", [("X-A", "1\nX-Injected: 1")]),
        ("/a", [("X-A\r\nX-Injected", "1")]),
        ("/a HTTP/1.1\r\nX-Injected: 1\r\nX-B:", []),
    ],
)
async def test_a_line_break_never_reaches_the_upstream(pool, path, headers):
    async with RawUpstream(answering(OK)) as upstream:
        # Built from parts as proxy.routing builds upstream URLs: nothing is cleaned up.
        url = URL.build(
            scheme="http", host="127.0.0.1", port=upstream.port, path=path, encoded=True
        )
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", url, CIMultiDict(headers))
    assert upstream.heads == []


async def test_each_header_keeps_the_tools_spelling(pool):
    # (aiohttp's client respells a repeated name after its last spelling; names are
    # case-insensitive either way, RFC 9110 §5.1)
    async with RawUpstream(answering(OK)) as upstream:
        headers = CIMultiDict([("X-Repeat", "1"), ("x-repeat", "2")])
        await (await pool.request("GET", upstream.url(), headers)).read()
    assert upstream.heads[0].endswith(b"\r\nX-Repeat: 1\r\nx-repeat: 2\r\n\r\n")


# --- the same answer, the same status, headers and body ---------------------------------------

ANSWERS = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\nConnection: close\r\n\r\n{"data":[]}',
    "chunked with extensions and trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    "close-delimited 1.1": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    "close-delimited 1.0": b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil the end",
    "1.0 with length": b"HTTP/1.0 201 Created\r\nContent-Length: 3\r\n\r\nabc",
    "early hints first": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    "odd whitespace": b"HTTP/1.1 200 OK\r\nX-Pad:    padded   \r\nX-Empty:\r\nX-Tab:\tv\t\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    "bytes that are not UTF-8": b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nX-B: caf\xc3\xa9\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    "reason with spaces": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    "no reason": b"HTTP/1.1 200 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "repeated headers": b"HTTP/1.1 302 Found\r\nSet-Cookie: a=1\r\nLocation: /x\r\n"
    b"set-cookie: b=2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "204 no content": b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    "304 with a length": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n"
    b'ETag: "e"\r\nConnection: close\r\n\r\n',
    "gzip kept compressed": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\n\x1f\x8b\x08",
    # What aiohttp's client forgives, so does dmgate's:
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\nok",
    "transfer coding without chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
    b"Connection: close\r\n\r\nabc",
}

REFUSED = {
    "space before the colon": b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "length and chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    "a header too long": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
    "not HTTP": b"hello there\r\n\r\n",
}


@pytest.mark.parametrize("raw", ANSWERS.values(), ids=ANSWERS.keys())
async def test_the_relay_gets_what_aiohttps_client_gets(relay, pool, raw):
    async with RawUpstream(answering(raw)) as upstream:
        async with await relay.send_by_aiohttp("r", "GET", upstream.url(), CIMultiDict()) as r:
            expected = (r.status, r.reason, list(r.headers.items()), await r.content.read())
        answer = await pool.request("GET", upstream.url(), CIMultiDict())
        got = (answer.status, answer.reason, list(answer.headers.items()), await answer.read())
    # Names compare case-insensitively: aiohttp's parser respells well-known ones (`ETag`
    # → `Etag`), dmgate's client keeps the upstream's spelling.
    assert folded(got) == folded(expected)
    assert [k for k, _ in got[2]] == raw_names(raw)


def folded(answer: tuple) -> tuple:
    status, reason, headers, body = answer
    return status, reason, [(k.lower(), v) for k, v in headers], body


def raw_names(raw: bytes) -> list[str]:
    """The header names of the final answer in `raw` (after any 1xx), as spelled there."""
    heads = raw.replace(b"\r\n", b"\n").split(b"\n\n")
    head = heads[1] if b" 103 " in heads[0] else heads[0]
    lines = head.split(b"\n")[1:]
    return [line.split(b":", 1)[0].decode() for line in lines if line[:1] not in (b" ", b"\t")]


@pytest.mark.parametrize("raw", REFUSED.values(), ids=REFUSED.keys())
async def test_what_aiohttps_client_refuses_dmgates_refuses(relay, pool, raw):
    async with RawUpstream(answering(raw)) as upstream:
        with pytest.raises(UpstreamUnavailable):  # 502 from dmgate
            async with await relay.send_by_aiohttp("r", "GET", upstream.url(), CIMultiDict()) as r:
                await r.read()
        with pytest.raises(ConnectionError):  # mapped to the same 502 by Relay
            await (await pool.request("GET", upstream.url(), CIMultiDict())).read()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_an_answer_cut_short_is_an_error_not_a_short_body(pool, raw):
    async with RawUpstream(answering(raw)) as upstream:
        answer = await pool.request("GET", upstream.url(), CIMultiDict())
        with pytest.raises(UpstreamClosed):
            await answer.read()


async def test_a_malformed_answer_is_an_error(pool):
    async with RawUpstream(answering(b"HTTP/1.1 2OO OK\r\n\r\n")) as upstream:
        with pytest.raises(ConnectionError, match="malformed"):
            await pool.request("GET", upstream.url(), CIMultiDict())


# --- keep-alive -----------------------------------------------------------------------------


async def test_connections_are_kept_alive_and_reused(pool):
    async with RawUpstream(answering(OK, keep_alive=True)) as upstream:
        for _ in range(5):
            answer = await pool.request("GET", upstream.url(), CIMultiDict())
            assert await answer.read() == b"ok"
    assert upstream.connections == 1


async def test_an_upstream_that_says_close_gets_a_new_connection_each_time(pool):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    async with RawUpstream(answering(raw, keep_alive=True)) as upstream:
        for _ in range(3):
            assert await (await pool.request("GET", upstream.url(), CIMultiDict())).read() == b"ok"
    assert upstream.connections == 3


async def test_bytes_after_an_answer_are_never_taken_for_the_next_answer(pool):
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    async with RawUpstream(answering(OK + smuggled, keep_alive=True)) as upstream:
        assert await (await pool.request("GET", upstream.url(), CIMultiDict())).read() == b"ok"
        answer = await pool.request("GET", upstream.url(), CIMultiDict())
        assert await answer.read() == b"ok"  # its own answer, on a new connection
    assert upstream.connections == 2


def closing_on_the_second_request() -> Respond:
    """Answers the first request on each connection and keeps it open, then closes it on
    the next request without a word: the race of a keep-alive timeout on the upstream."""
    # Keyed by the writer itself, not its id(): a closed connection's id can come back.
    served: dict[asyncio.StreamWriter, int] = {}

    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        served[writer] = served.get(writer, 0) + 1
        if served[writer] > 1:
            return False
        writer.write(OK)
        await writer.drain()
        return True

    return respond


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
async def test_an_idempotent_request_on_a_stale_connection_is_sent_again(pool, method):
    async with RawUpstream(closing_on_the_second_request()) as upstream:
        assert await (await pool.request(method, upstream.url(), CIMultiDict())).read() == b"ok"
        assert await (await pool.request(method, upstream.url(), CIMultiDict())).read() == b"ok"
    assert upstream.connections == 2
    assert len(upstream.heads) == 3  # the second request twice: once lost, once answered


async def test_a_request_sent_again_never_meets_another_stale_connection(pool):
    """An upstream that closes idle connections closes them all: the second try goes out on
    a new connection, not on the next idle one."""
    release = asyncio.Event()
    served: dict[asyncio.StreamWriter, int] = {}  # (not id(): ids of closed ones come back)

    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        served[writer] = served.get(writer, 0) + 1
        if served[writer] > 1:
            return False  # closed on its next request, unanswered
        await release.wait()
        writer.write(OK)
        await writer.drain()
        return True

    async with RawUpstream(respond) as upstream:
        two = [asyncio.create_task(ok_from(pool, upstream)) for _ in range(2)]
        for _ in range(100):
            if len(upstream.heads) == 2:
                break
            await asyncio.sleep(0.01)
        release.set()
        assert await asyncio.gather(*two) == [b"ok", b"ok"]  # two idle connections now
        assert await ok_from(pool, upstream) == b"ok"
    assert upstream.connections == 3


async def test_a_post_on_a_stale_connection_is_not_sent_twice(pool):
    async with RawUpstream(closing_on_the_second_request()) as upstream:
        await (await pool.request("POST", upstream.url(), CIMultiDict())).read()
        with pytest.raises(UpstreamClosed):
            await pool.request("POST", upstream.url(), CIMultiDict())
    assert len(upstream.heads) == 2


async def test_a_connection_the_upstream_closed_while_idle_is_not_reused(pool):
    async with RawUpstream(answering(OK, keep_alive=False)) as upstream:
        # Answered without `Connection: close`, then closed: the pool must notice the close.
        assert await (await pool.request("POST", upstream.url(), CIMultiDict())).read() == b"ok"
        for _ in range(50):
            if not pool._open:
                break
            await asyncio.sleep(0.01)
        assert not pool._open
        assert await (await pool.request("POST", upstream.url(), CIMultiDict())).read() == b"ok"
    assert upstream.connections == 2


# --- timeouts, limits, cancellation ----------------------------------------------------------


def silent() -> Respond:
    async def respond(_head: bytes, _writer: asyncio.StreamWriter, _n: int) -> bool:
        await asyncio.sleep(30)
        return False

    return respond


async def test_an_upstream_that_does_not_answer_times_out():
    pool = UpstreamPool(limit=2, connect_timeout=2, read_timeout=0.3)
    try:
        async with RawUpstream(silent()) as upstream:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.request("GET", upstream.url(), CIMultiDict())
            assert time.monotonic() - started < 2
            assert not pool._open  # the connection is closed, not left for the next request
    finally:
        pool.close()


async def test_an_answer_that_stalls_mid_body_times_out():
    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(30)
        return False

    pool = UpstreamPool(limit=2, connect_timeout=2, read_timeout=0.3)
    try:
        async with RawUpstream(respond) as upstream:
            answer = await pool.request("GET", upstream.url(), CIMultiDict())
            chunks = answer.iter_any()
            assert await chunks.__anext__() == b"first"
            with pytest.raises(TimeoutError):
                await chunks.__anext__()
    finally:
        pool.close()


async def test_an_unreachable_upstream_is_an_os_error(pool):
    async with RawUpstream(answering(OK)) as upstream:
        url = upstream.url()
    with pytest.raises(OSError):
        await pool.request("GET", url, CIMultiDict())
    assert not pool._open


def answering_after(release: asyncio.Event) -> Respond:
    """OK to every request, each once `release` is set; connections kept alive."""

    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        await release.wait()
        writer.write(OK)
        await writer.drain()
        return True

    return respond


async def ok_from(pool: UpstreamPool, upstream: RawUpstream) -> bytes:
    return await (await pool.request("GET", upstream.url(), CIMultiDict())).read()


async def test_no_more_connections_than_the_limit_are_opened():
    release = asyncio.Event()
    pool = UpstreamPool(limit=2, connect_timeout=2, read_timeout=5)
    try:
        async with RawUpstream(answering_after(release)) as upstream:
            tasks = [asyncio.create_task(ok_from(pool, upstream)) for _ in range(6)]
            for _ in range(100):
                if len(upstream.heads) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(upstream.heads) == 2  # four wait for a connection
            release.set()
            assert await asyncio.gather(*tasks) == [b"ok"] * 6
        assert upstream.peak_open == 2
    finally:
        pool.close()


async def test_a_waiting_request_whose_tool_went_away_leaves_its_turn_to_the_next():
    release = asyncio.Event()
    pool = UpstreamPool(limit=1, connect_timeout=2, read_timeout=5)
    try:
        async with RawUpstream(answering_after(release)) as upstream:
            first, gone, last = (asyncio.create_task(ok_from(pool, upstream)) for _ in range(3))
            for _ in range(100):
                if len(pool._waiters) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(pool._waiters) == 2
            gone.cancel()
            release.set()
            assert await asyncio.wait_for(asyncio.gather(first, last), 5) == [b"ok", b"ok"]
            assert gone.cancelled()
    finally:
        pool.close()


async def test_a_request_whose_tool_went_away_closes_its_connection(pool):
    async with RawUpstream(silent()) as upstream:
        task = asyncio.create_task(pool.request("GET", upstream.url(), CIMultiDict()))
        for _ in range(100):
            if upstream.heads:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not pool._open  # its answer would belong to no one


async def test_a_body_read_in_part_closes_its_connection(pool):
    big = b"x" * (1024 * 1024)
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    async with RawUpstream(answering(raw, keep_alive=True)) as upstream:
        answer = await pool.request("GET", upstream.url(), CIMultiDict())
        await answer.iter_any().__anext__()
        answer.close()
        assert not pool._open
        assert await (await pool.request("GET", upstream.url(), CIMultiDict())).read() == big
    assert upstream.connections == 2


async def test_a_large_answer_is_read_with_back_pressure(pool):
    """Reading pauses while the reader lags: at most the high-water mark plus one read is
    held, however much the upstream has to send."""
    size = 32 * 1024 * 1024
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size

    async def respond(_head: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(raw)
        block = b"y" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        return True

    async with RawUpstream(respond) as upstream:
        answer = await pool.request("GET", upstream.url(), CIMultiDict())
        total, largest = 0, 0
        async for chunk in answer.iter_any():
            total += len(chunk)
            largest = max(largest, len(chunk))
            await asyncio.sleep(0)  # a slow tool
        assert total == size
        assert largest <= 1024 * 1024, largest
        # and the connection, unpaused, serves the next request
        assert (await pool.request("GET", upstream.url(), CIMultiDict())).status == 200


async def test_a_tls_upstream_is_verified_and_kept_alive(tmp_path, pool):
    from tests.fakes.tls import TestCA

    ca = TestCA(tmp_path)
    server = await asyncio.start_server(
        RawUpstream(answering(OK, keep_alive=True))._serve,
        "127.0.0.1",
        0,
        ssl=ca.server_context(["api.x.com"]),
    )
    port = server.sockets[0].getsockname()[1]
    url = URL(f"https://127.0.0.1:{port}/2/users/me", encoded=True)
    trust = ca.client_context()
    try:
        # Forward mode: the host the tool called is the server name and `Host`.
        for _ in range(2):
            answer = await pool.request("GET", url, CIMultiDict(), "api.x.com", trust)
            assert await answer.read() == b"ok"
        assert len(pool._open) == 1
        # Without dmgate's trust in the test CA, the system's trust store refuses it.
        with pytest.raises(OSError):
            await pool.request("GET", url, CIMultiDict(), "api.x.com")
    finally:
        server.close()


async def test_send_gives_requests_without_a_body_to_dmgates_client(relay):
    async with RawUpstream(answering(OK, keep_alive=True)) as upstream:
        async with await relay.send("r", "GET", upstream.url(), CIMultiDict()) as r:
            assert isinstance(r, UpstreamAnswer)
            assert await r.content.read() == b"ok"
        for data in (b"body", b""):  # a body, even an empty one, goes through aiohttp's
            async with await relay.send("r", "POST", upstream.url(), [], data=data) as r:
                assert isinstance(r, aiohttp.ClientResponse)
                assert await r.read() == b"ok"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"  # of a body it does not send
    async with RawUpstream(answering(head)) as upstream:
        async with await relay.send("r", "HEAD", upstream.url(), []) as r:
            assert isinstance(r, aiohttp.ClientResponse)
            assert (r.status, await r.read()) == (200, b"")


# --- through the gateway ---------------------------------------------------------------------


async def test_a_signal_answer_cut_short_is_502_from_dmgate(gate_factory):
    """A follower list is read before the tool hears anything, so an upstream that breaks
    off mid-answer still gets a proper 502, not an internal error."""
    from tests.inprocess.conftest import routes_to
    from tests.integration.dm_helpers import SENDER, bearer

    cut = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"da'
    async with RawUpstream(answering(cut)) as upstream:
        gate = await gate_factory(env={"DMGATE_ROUTES": routes_to(str(upstream.url("")))})
        r = await gate.client.get(f"/x/2/users/{SENDER}/followers", headers=bearer())
    assert r.status_code == 502, r.text
    assert (r.json()["source"], r.json()["error"]) == ("dmgate", "upstream_unavailable")
    assert upstream.heads[0].startswith(f"GET /2/users/{SENDER}/followers HTTP/1.1\r\n".encode())
