"""dmgate's own HTTP/1.1 client for upstream requests that carry no body.

Most of what automation suites send through dmgate is reads (timelines, follower lists,
search): a request line and headers, no body. For those, aiohttp's client costs more CPU
than the rest of dmgate's work on the request together (bench/README.md, "Where the rest
is"). This client does only what such a request needs: one keep-alive connection pool per
upstream, the request head written in one call, and the answer parsed by llhttp (through
httptools, the parser uvicorn uses). `Relay.send` gives it every request without a body:
pass-through, signals, dmgate's own lookups. Requests with a body (DMs, uploads, releases)
and HEAD go through aiohttp's client as before.

It sends exactly what aiohttp's client sends for the same request: `Host` first, then the
tool's headers in order, and `Content-Length: 0` for a method that normally has a body,
and it hands back what aiohttp would: 1xx answers skipped, framing (Content-Length,
chunked or close-delimited) undone, bodies streamed with back-pressure, a connection cut
mid-answer reported as an error.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httptools
from multidict import CIMultiDict
from yarl import URL

# aiohttp's rules, so that a request reads the same upstream whichever client sends it.
_BODYLESS_BY_DEFAULT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# An idle pooled connection older than this is closed rather than reused (aiohttp's
# default too): upstreams close idle connections on their own schedule, and the older a
# connection, the likelier a request on it meets the upstream's close.
KEEPALIVE_SECONDS = 15.0
# Reading from the upstream pauses while this much of a streamed answer waits for the tool.
_HIGH_WATER = 256 * 1024
# aiohttp's client's limits on an answer's head (a header line; headers), kept so that an
# answer one client relays the other does too, and a broken upstream cannot fill memory.
_MAX_FIELD = 8190
_MAX_HEADERS = 128
_MAX_HEAD = _MAX_HEADERS * (2 * _MAX_FIELD + 4)


@functools.cache  # loading the trust store reads files: once, on the first TLS request
def default_tls() -> ssl.SSLContext:
    """The system's trust store, verification on, HTTP/1.1 offered by ALPN (as aiohttp)."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# host, port, TLS context (None: plain HTTP), TLS server name (None: the host)
_Key = tuple[str, int, ssl.SSLContext | None, str | None]


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class UpstreamProtocolError(ConnectionError):
    """The upstream's answer is not HTTP/1.1 dmgate can relay."""


class UpstreamAnswer:
    """One upstream answer: status, reason and headers once they have arrived, then the
    body, read whole (`read`) or chunk by chunk (`iter_any`). Shaped like the parts of
    aiohttp's ClientResponse that relay.relay_response reads, `content` included."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_waiter",
        "content_length",
        "head",
        "headers",
        "raw_headers",
        "reason",
        "received",
        "status",
    )

    def __init__(self, conn: _Connection, head: asyncio.Future[None]) -> None:
        self._conn: _Connection | None = conn
        self.head = head
        self.status = 0
        self.reason = ""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.content_length: int | None = None
        self.received = False  # any byte of it: a reused connection that got none was stale
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content(self) -> UpstreamAnswer:
        return self

    # --- fed by the connection ---

    def _body(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        self._done = True
        self._conn = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._error = exc
        self._conn = None
        if not self.head.done():
            self.head.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- read by the relay ---

    async def _arrival(self) -> None:
        """Wait for the connection's next news (a chunk, the end, a failure), reading from
        the upstream again if it was paused."""
        if self._conn is not None:
            self._conn.resume()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    def _take(self) -> bytes:
        """Everything received and not yet read."""
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done:
            if self._error is not None:
                raise self._error
            await self._arrival()
        return self._take()

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            while not self._chunks:
                if self._error is not None:
                    raise self._error
                if self._done:
                    return
                await self._arrival()
            yield self._take()

    def close(self) -> None:
        """Stop reading: a connection whose answer was not read to the end cannot carry
        another request."""
        conn = self._conn
        if conn is not None and not self._done:
            conn.abort()

    async def __aenter__(self) -> UpstreamAnswer:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to one upstream; the answer to one request at a time."""

    def __init__(self, pool: UpstreamPool, key: _Key) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # aiohttp's leniencies for answers (its parser is llhttp too): obs-folded and
        # otherwise odd header lines, bare LF line ends, spaces after a chunk size.
        self._parser.set_dangerous_leniencies(
            lenient_headers=True,
            lenient_optional_cr_before_lf=True,
            lenient_spaces_after_chunk_size=True,
        )
        self._head_bytes = 0
        # The answer in hand has neither a length nor chunking: it ends with the connection.
        self._close_delimited = False
        self.answer: UpstreamAnswer | None = None
        self.served = 0  # requests answered: a reused connection may meet a stale close
        self.idle_since = 0.0
        self.closed = False
        self._paused = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = pool.read_timeout
        self._loop = pool.loop

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None:  # nothing asked: an upstream that talks out of turn
            self.abort()
            return
        answer.received = True
        self._last_read = self._loop.time()
        if not answer.head.done():
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._fail(UpstreamProtocolError("the upstream's answer head is too large"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserCallbackError as exc:  # raised by a callback below
            cause = exc.__context__ or exc
            self._fail(cause if isinstance(cause, UpstreamProtocolError) else exc)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the upstream's answer is malformed: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        self._cancel_timer()
        answer = self.answer
        if answer is None:
            return
        self.answer = None
        if answer.head.done() and self._close_delimited:
            answer._finish()
        else:
            answer._fail(UpstreamClosed("the upstream closed the connection mid-answer"))

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is None:
            # More than the answer, in the same read: never parsed as the next request's
            # answer (that would hand one request's answer to another). The connection goes.
            raise UpstreamProtocolError("the upstream sent more than its answer")
        answer.raw_headers = []
        answer.reason = ""

    def on_status(self, reason: bytes) -> None:
        if self.answer is not None:
            self.answer.reason += reason.decode("utf-8", "surrogateescape")

    def on_header(self, name: bytes, value: bytes) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.raw_headers.append((name, value))
        if len(name) > _MAX_FIELD or len(value) > _MAX_FIELD:
            raise UpstreamProtocolError("a header line in the upstream's answer is too long")
        if len(answer.raw_headers) > _MAX_HEADERS:
            raise UpstreamProtocolError("the upstream's answer has too many headers")
        if b"\0" in value:  # allowed by the lenient parser, refused by aiohttp's
            raise UpstreamProtocolError("a header in the upstream's answer holds a NUL byte")

    def on_headers_complete(self) -> None:
        answer = self.answer
        if answer is None:
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: skipped, as aiohttp's client does
            return
        answer.status = status
        # Decoded as aiohttp's parser does; relay.drop_hop_by_hop turns the bytes that are
        # not UTF-8 into the Latin-1 characters they stand for. llhttp leaves a value's
        # trailing whitespace, which is not part of it (RFC 9110 §5.5). Names keep the
        # upstream's spelling (aiohttp's parser respells well-known ones: `ETag` → `Etag`).
        headers = answer.headers
        for name, value in answer.raw_headers:
            headers.add(
                name.decode("utf-8", "surrogateescape"),
                value.rstrip(b" \t").decode("utf-8", "surrogateescape"),
            )
        length = headers.get("Content-Length")
        if length is not None and length.isdigit():
            answer.content_length = int(length)
        # An answer framed by neither a length nor chunking ends where the connection does
        # (RFC 9112 §6.3).
        coding = headers.get("Transfer-Encoding", "")
        self._close_delimited = length is None and not coding.lower().endswith("chunked")
        answer.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.answer is not None:
            self.answer._body(body)

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is None or not answer.head.done():
            return  # the end of a 1xx answer: the real one follows
        self.answer = None
        self._cancel_timer()
        self.served += 1
        answer._finish()
        if self._parser.should_keep_alive() and not self.closed:
            self.resume()  # if paused, it was for this answer's sake, not the next one's
            self._pool._release(self)
        else:
            self.abort()

    # --- used by the pool and the answer ---

    def send(self, head: bytes) -> UpstreamAnswer:
        answer = self.answer = UpstreamAnswer(self, self._loop.create_future())
        self._close_delimited = False
        self._head_bytes = 0
        assert self.transport is not None
        self.transport.write(head)
        self._last_read = self._loop.time()
        self._arm()
        return answer

    def _arm(self) -> None:
        self._timer = self._loop.call_at(self._last_read + self._read_timeout, self._check)

    def _check(self) -> None:
        """The read timeout: no byte from the upstream for `read_timeout` seconds."""
        self._timer = None
        if self.answer is None or self._paused:
            return
        if self._loop.time() < self._last_read + self._read_timeout:
            self._arm()  # bytes came since: wait from the last of them
            return
        self._fail(TimeoutError("the upstream did not answer in time"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: BaseException) -> None:
        answer = self.answer
        self.answer = None
        self.abort()
        if answer is not None:
            answer._fail(exc)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self._last_read = self._loop.time()  # the tool was slow, not the upstream
            self.transport.resume_reading()
            if self._timer is None and self.answer is not None:
                self._arm()

    def abort(self) -> None:
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            self._pool._forget(self)
            if self.transport is not None:
                self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to the upstreams, `limit` open at most (idle and busy, all
    upstreams together); a request beyond that waits for one to free up."""

    def __init__(self, limit: int, connect_timeout: float, read_timeout: float) -> None:
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.get_running_loop()
        self._idle: dict[_Key, deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def request(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        host: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> UpstreamAnswer:
        """Send a request without a body; return once the answer's head has arrived. A
        request that met a kept-alive connection the upstream had just closed is sent
        again on a new one if its method is idempotent (RFC 9112 §9.3.1), as aiohttp does.
        Raises OSError (unreachable, TLS), TimeoutError or ConnectionError."""
        https = url.scheme == "https"
        server_name = host if https and host is not None else None
        if https and tls is None:
            tls = default_tls()
        # One pool per upstream, TLS context and server name: a connection is only reused
        # for requests that would have opened the same one.
        key = (url.raw_host, url.port, tls, server_name)
        head = _request_head(method, url, headers, host)
        retry = method in IDEMPOTENT
        reuse = True
        while True:
            conn = await self._acquire(key, reuse)
            reused = conn.served > 0
            answer = conn.send(head)
            try:
                await answer.head
            except UpstreamClosed:
                if reused and retry and not answer.received:
                    # On a new connection: the other idle ones may be just as stale (an
                    # upstream that closes idle connections closes them all).
                    retry = reuse = False
                    continue
                raise
            except BaseException:
                conn.abort()  # cancelled (the tool went away) or failed: never reused
                raise
            return answer

    async def _acquire(self, key: _Key, reuse: bool = True) -> _Connection:
        """An idle connection to the upstream (`reuse`), else a new one."""
        while True:
            idle = self._idle.get(key) if reuse else None
            if idle:
                too_old = self.loop.time() - KEEPALIVE_SECONDS
                while idle and idle[0].idle_since < too_old:
                    idle.popleft().abort()
                if idle:
                    return idle.pop()  # the most recently used: the least likely closed
            if len(self._open) >= self.limit:
                # At the limit: an idle connection to another upstream makes room.
                spare = next((d for d in self._idle.values() if d), None)
                if spare is not None:
                    spare.popleft().abort()
            if len(self._open) < self.limit:
                return await self._connect(key)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:  # cancelled: the tool went away
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._wake_one()  # woken, but not going to use it: the next one may
                raise

    async def _connect(self, key: _Key) -> _Connection:
        host, port, tls, server_name = key
        conn = _Connection(self, key)
        self._open.add(conn)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=server_name,  # None: the host (set only with TLS)
                )
        except BaseException:
            self._forget(conn)
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = self.loop.time()
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        idle.append(conn)
        self._wake_one()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()


def _request_head(method: str, url: URL, headers: CIMultiDict[str], host: str | None) -> bytes:
    """The request line and headers as aiohttp's client writes them (client_reqrep)."""
    authority = host if host is not None else url.host_port_subcomponent
    if "Host" in headers:  # a caller's own Host goes first, in place of the URL's
        authority = headers.getall("Host")[-1]
        headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "host")
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\nHost: {authority}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if method not in _BODYLESS_BY_DEFAULT and "Content-Length" not in headers:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # A line break inside a name, value or target would start a header or a request of its
    # own upstream. (None can come from aiohttp's server parser; aiohttp's client refuses
    # them the same way.) Two counts in C instead of a look at every value.
    if text.count("\n") != len(lines) + 1 or text.count("\r") != len(lines) + 1:
        raise ValueError("a line break in the request line or a header")
    return text.encode("utf-8")
