"""Streaming pass-through to an upstream: bytes in, bytes out, nothing decoded.

Faithful means: any method; the path and query exactly as the tool sent them; repeated
headers kept in order; bodies streamed both ways without decompressing; status codes (3xx
included — redirects are never followed) returned as they came. Only hop-by-hop headers,
`Host` and dmgate's own `DMGate-*` request headers are dropped.

Two clients send them (`Relay.send`): dmgate's own (`upstream_pool`) every request without
a body, most of the traffic and where aiohttp's client cost the most; aiohttp's the rest.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import Histogram
from yarl import URL

from proxy.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from proxy.metrics import Metrics
from proxy.refusals import MethodOverride, checked_form_stream, form_kind
from proxy.settings import Route
from proxy.upstream_pool import UpstreamAnswer, UpstreamPool

# RFC 9110 §7.6.1, plus the proxy ones every proxy drops.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
# The client library must add nothing the tool did not send. One exception aiohttp has no
# switch for: a POST/PUT/PATCH/DELETE without a body goes out with `Content-Length: 0`.
# That is the same message (no body either way; RFC 9110 §8.6 even asks for it on POST).
_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_NO_BODY_STATUS = frozenset({204, 304})
# Answers up to this size with a Content-Length are relayed whole (see relay_response);
# larger or open-ended ones are streamed chunk by chunk.
WHOLE_BODY_MAX = 64 * 1024


# An upstream's answer, from whichever client sent the request (Relay.send).
Upstream = aiohttp.ClientResponse | UpstreamAnswer
_Answer = TypeVar("_Answer", aiohttp.ClientResponse, UpstreamAnswer)


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> frozenset[str]:
    """Header names the sender listed in `Connection`: hop-by-hop too (RFC 9110 §7.6.1)."""
    if "Connection" not in headers:  # the usual case: nothing to parse
        return frozenset()
    tokens: set[str] = set()
    for value in headers.getall("Connection"):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


# Header values are bytes on the wire; aiohttp parses them as UTF-8 with surrogateescape
# and its writer silently skips the surrogates, so a byte that is not UTF-8 (RFC 9110
# obs-text, e.g. a Latin-1 `é`) would vanish on the way through. Such a request is refused
# (the tool can fix it; forwarding it altered could break what it signed); in an answer,
# which dmgate cannot send back, each such byte is passed as the Latin-1 character it
# historically meant (RFC 9110 §5.5), so nothing is lost.
_STRAY_BYTE_AS_LATIN1 = {0xDC80 + i: chr(0x80 + i) for i in range(128)}


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def request_headers_for_upstream(
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
) -> CIMultiDict[str]:
    """The tool's headers minus hop-by-hop, Host and dmgate's own control headers, in
    order, repeats kept. (Names keep their spelling, except that aiohttp's parser writes
    well-known ones canonically, `authorization` → `Authorization`: names are
    case-insensitive, RFC 9110 §5.1.)"""
    listed = _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        low = name.lower()
        if low in HOP_BY_HOP or low == "host" or low.startswith("dmgate-") or low in listed:
            continue
        if not value.isascii() and not _is_utf8(value):
            raise BadRequest(
                f"header {name!r} carries bytes that are not UTF-8; dmgate forwards "
                "headers unchanged or not at all"
            )
        out.add(name, value)
    return out


def drop_hop_by_hop(headers: CIMultiDict[str]) -> None:
    """Remove, in place, an upstream answer's hop-by-hop headers (and those its
    `Connection` lists); a byte that is not UTF-8 in a value becomes the Latin-1
    character it historically meant (see _STRAY_BYTE_AS_LATIN1)."""
    # Copied whole, then pruned: the copy and these few lookups run in multidict's C
    # code, where a loop over every header in Python cost a microsecond for each.
    names = HOP_BY_HOP | _connection_tokens(headers) if "Connection" in headers else HOP_BY_HOP
    for name in names:
        if name in headers:
            headers.popall(name)
    if not "".join(headers.values()).isascii():
        fixed = [(k, v.translate(_STRAY_BYTE_AS_LATIN1)) for k, v in headers.items()]
        headers.clear()
        headers.extend(fixed)


def response_headers_for_client(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's headers minus hop-by-hop ones, in order, repeats kept."""
    out = CIMultiDict(headers)
    drop_hop_by_hop(out)
    return out


def client_session(
    pool_size: int, connect_timeout: float, read_timeout: float
) -> aiohttp.ClientSession:
    """One pooled session per application, closed on cleanup."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=0, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the tool, not to dmgate
        skip_auto_headers=_SKIP_AUTO,
    )


def upstream_tls(routes: dict[str, Route]) -> dict[str, ssl.SSLContext]:
    """Verifying client contexts for routes that name their own CA bundle (the rest use
    the system's trust store). Verification is never off."""
    contexts = {}
    for name, route in routes.items():
        if route.ca_bundle is not None:
            ctx = ssl.create_default_context(cafile=str(route.ca_bundle))
            ctx.keylog_filename = None  # type: ignore[assignment]
            contexts[name] = ctx
    return contexts


class Relay:
    """Sends requests to upstreams and maps their failures to dmgate errors. Its pooled
    session is opened on start-up (`start`) and closed on cleanup (`close`)."""

    def __init__(
        self,
        metrics: Metrics,
        new_session: Callable[[], aiohttp.ClientSession],
        new_pool: Callable[[], UpstreamPool],
        tls: dict[str, ssl.SSLContext] | None = None,
    ) -> None:
        self._metrics = metrics
        self._new_session = new_session
        self._new_pool = new_pool
        self._session: aiohttp.ClientSession | None = None
        self._pool: UpstreamPool | None = None
        self._durations: dict[str, Histogram] = {}
        self._tls = tls or {}

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Relay.start() was not called"
        return self._session

    def start(self) -> None:
        # Both need the running loop: not at build time.
        self._session = self._new_session()
        self._pool = self._new_pool()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()

    def _duration(self, route: str) -> Histogram:
        # prometheus_client's labels() takes a lock and builds a key on every call.
        child = self._durations.get(route)
        if child is None:
            child = self._durations[route] = self._metrics.upstream_duration.labels(route)
        return child

    async def send(
        self,
        route: str,
        method: str,
        url: URL,
        headers: CIMultiDict[str] | Iterable[tuple[str, str]],
        data: Any = None,
        host: str | None = None,
    ) -> Upstream:
        """Open the upstream request; the caller reads the answer, `async with` it.
        `host` (forward mode): the host the tool called, sent as `Host` and as the TLS
        server name, so the upstream sees the request exactly as the tool addressed it.
        A request without a body (most of them: reads) goes through dmgate's own client,
        `upstream_pool`, which costs a fraction of aiohttp's; the rest through aiohttp's.
        (HEAD stays with aiohttp: httptools has no way to tell llhttp that the answer to a
        HEAD has no body, whatever its Content-Length says.)"""
        if not isinstance(headers, CIMultiDict):
            headers = CIMultiDict(headers)
        if data is None and method != "HEAD":
            assert self._pool is not None, "Relay.start() was not called"
            return await self._measured(
                route, self._pool.request(method, url, headers, host, self._tls.get(route))
            )
        return await self.send_by_aiohttp(route, method, url, headers, data, host)

    async def send_by_aiohttp(
        self,
        route: str,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: Any = None,
        host: str | None = None,
    ) -> aiohttp.ClientResponse:
        """`send` through aiohttp's client, whatever the request (tests hold dmgate's own
        client to what this sends and gets)."""
        extra: dict[str, Any] = {}
        if host is not None:
            headers["Host"] = host
            if url.scheme == "https":
                extra["server_hostname"] = host
        tls = self._tls.get(route)
        if tls is not None:
            extra["ssl"] = tls
        return await self._measured(
            route,
            self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                **extra,
                # No per-request skip_auto_headers: the session's (_SKIP_AUTO) apply, and
                # passing them again costs a set and a multidict per request.
                # URLs arrive already encoded; re-encoding would change what the tool
                # sent. (`url` is a yarl URL built with encoded=True by the caller.)
            ),
        )

    async def _measured(self, route: str, opening: Awaitable[_Answer]) -> _Answer:
        """Await an upstream answer's head, timed and its failures counted and mapped."""
        started = time.perf_counter()
        try:
            with upstream_errors(route):
                resp = await opening
        except UpstreamTimeout:
            self._metrics.upstream_errors.labels(route, "timeout").inc()
            raise
        except UpstreamUnavailable:
            self._metrics.upstream_errors.labels(route, "unreachable").inc()
            raise
        finally:
            self._duration(route).observe(time.perf_counter() - started)
        if resp.status >= 500:
            self._metrics.upstream_errors.labels(route, "status_5xx").inc()
        return resp

    async def stream(
        self, request: web.Request, route: str, url: URL, host: str | None = None
    ) -> web.StreamResponse:
        """Pass a request through and stream the answer back. A form body is watched for a
        `_method` field on the way (refusals.checked_form_stream)."""
        data: Any = None
        if request.body_exists:
            kind = form_kind(request.headers.get("Content-Type"))
            data = request.content if kind is None else checked_form_stream(request.content, kind)
        headers = request_headers_for_upstream(request.headers)
        async with await self.send(route, request.method, url, headers, data, host) as upstream:
            return await relay_response(request, upstream, route=route)


class upstream_errors:  # lower case: used like a function, `with upstream_errors(route):`
    """Translate the client library's failures into dmgate's 502/504 answers. (A class,
    not @contextmanager: it wraps every forwarded request and is cheaper this way.)"""

    __slots__ = ("route",)

    def __init__(self, route: str | None) -> None:
        self.route = route

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: object, exc: BaseException | None, _tb: object) -> None:
        if exc is None:
            return
        name = f" for route {self.route!r}" if self.route else ""
        if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
            raise UpstreamTimeout(
                f"the upstream{name} did not answer in time", route=self.route
            ) from exc
        if isinstance(exc, aiohttp.ClientError | OSError):  # OSError: upstream_pool's
            if isinstance(exc.__cause__, MethodOverride):
                raise exc.__cause__  # the body stream stopped: the tool's request is refused
            raise UpstreamUnavailable(
                f"could not reach the upstream{name}: {type(exc).__name__}", route=self.route
            ) from exc


class RelayedResponse(web.StreamResponse):
    """A response that carries only what the upstream said.

    aiohttp fills in `Content-Type: application/octet-stream` and `Server: aiohttp/…` when
    a response has none; for a relayed answer that would put words in the upstream's mouth
    (a tool may sniff an untyped body; `Server` would leak dmgate's stack as the
    platform's), so both are removed again if the upstream did not send them. `Date` is
    kept: RFC 9110 §6.6.1 asks a forwarding recipient to add it when it is missing.
    Transfer framing is left to aiohttp: the upstream's `Content-Length` when it sent one,
    otherwise chunked (HTTP/1.1 clients) or close-delimited (HTTP/1.0 clients).
    """

    async def _prepare_headers(self) -> None:
        headers = self.headers
        untyped, anonymous = hdrs.CONTENT_TYPE not in headers, hdrs.SERVER not in headers
        await super()._prepare_headers()
        if untyped:
            headers.popall(hdrs.CONTENT_TYPE, None)
        if anonymous:
            headers.popall(hdrs.SERVER, None)


class WholeRelayedResponse(RelayedResponse):
    # Headers wait for the body, so both leave in one write.
    _send_headers_immediately = False


def _relayed(
    cls: type[RelayedResponse],
    upstream: Upstream,
    extra_headers: dict[str, str] | None,
) -> RelayedResponse:
    resp = cls(status=upstream.status, reason=upstream.reason, headers=upstream.headers)
    drop_hop_by_hop(resp.headers)
    if extra_headers:
        resp.headers.update(extra_headers)
    return resp


async def relay_response(
    request: web.Request,
    upstream: Upstream,
    extra_headers: dict[str, str] | None = None,
    prefix: bytes = b"",
    route: str | None = None,
) -> web.StreamResponse:
    """Copy an upstream response to the client, streaming the body. `prefix` is body
    already read from the upstream."""
    has_body = request.method != "HEAD" and upstream.status not in _NO_BODY_STATUS
    length = upstream.content_length
    whole = has_body and not prefix and length is not None and length <= WHOLE_BODY_MAX
    if whole:
        # Small and of known size (most API answers): read it whole, then send headers
        # and body in one write. That saves a system call per answer (~4% of dmgate's CPU
        # per request in bench/passthrough.py), and an upstream that breaks off mid-body
        # still gets a clean 502/504, because nothing has been sent to the tool yet.
        with upstream_errors(route):
            body = await upstream.content.read()
    resp = _relayed(WholeRelayedResponse if whole else RelayedResponse, upstream, extra_headers)
    try:
        await resp.prepare(request)
        if whole:
            await resp.write_eof(body)
            return resp
        if has_body:
            if prefix:
                await resp.write(prefix)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
        await resp.write_eof()
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        # The upstream broke off or stalled mid-body, or the tool went away. Headers are
        # gone already: all that is left is to cut the connection, so the tool sees a
        # truncated body rather than a silently short one.
        if request.transport is not None:
            request.transport.close()
    return resp
