"""The listening socket: one port for reverse mode, the review API and forward mode.

Each new connection is looked at just long enough to read its first request line. Anything
but `CONNECT` is handed, bytes and all, to aiohttp. A `CONNECT` is answered here:

- a host a route owns is intercepted: `200`, then TLS is terminated with a certificate
  for that host signed by dmgate's CA, and the decrypted connection is handed to the same
  aiohttp server, where the gateway judges each request exactly as in reverse mode;
- a host on the tunnel allow-list is tunnelled blindly;
- anything else is refused (`403`; `407` without valid proxy credentials).

(`research/forward-proxy.md` records why: letting aiohttp answer CONNECT itself turns each
tunnel into one endless request and leaks handlers.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.web_server import Server

from proxy.app import gateway_first
from proxy.context import CTX
from proxy.errors import (
    BadRequest,
    DMGateError,
    Forbidden,
    ForwardModeUnavailable,
    HeadersTooLarge,
    ProxyAuthRequired,
    RequestTimeout,
    UpstreamUnavailable,
)
from proxy.forward_mode import access, tunnel
from proxy.forward_mode.ca import CAError
from proxy.forward_mode.certs import LeafCertificates
from proxy.logs import AccessLog
from proxy.metrics import Metrics
from proxy.settings import Settings

log = structlog.get_logger("dmgate.forward")

MAX_CONNECT_HEAD = 16 * 1024
# Beyond this a first request head is handed to aiohttp unfinished: its own limits (8 KiB
# lines, 128 fields) answer it.
MAX_REQUEST_HEAD = 256 * 1024
_ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


class ProxySite(web.TCPSite):
    """A TCP site whose connections start in `FirstRequest` instead of aiohttp."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, host, port)
        self._tunnels: set[asyncio.Transport] = set()
        # A socket bound by a supervisor and shared by its workers (proxy/workers.py).
        self._sock = sock

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        app = self._runner.app  # type: ignore[attr-defined]
        ctx = app[CTX]
        edge = Edge(ctx.settings, ctx.metrics, ctx.certs)
        server.request_handler = gateway_first(app, server.request_handler)
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(
                lambda: FirstRequest(edge, server, self._tunnels),
                sock=self._sock,
                backlog=self._backlog,
            )
        else:
            self._server = await loop.create_server(
                lambda: FirstRequest(edge, server, self._tunnels),
                self._host,
                self._port,
                backlog=self._backlog,
                reuse_address=self._reuse_address,
                reuse_port=self._reuse_port,
            )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await super().stop()
        # Blind tunnels are not aiohttp's: end them here (intercepted ones are).
        for transport in list(self._tunnels):
            transport.close()


@dataclass(frozen=True)
class Edge:
    """What the listener needs before a request reaches the application."""

    settings: Settings
    metrics: Metrics
    certs: LeafCertificates | None


class FirstRequest(asyncio.Protocol):
    """A new connection until it is known what it is."""

    def __init__(self, edge: Edge, server: Server, tunnels: set[asyncio.Transport]) -> None:
        self.edge = edge
        self.server = server
        self.tunnels = tunnels
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.is_connect = False
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        timeout = self.edge.settings.client_handshake_timeout.total_seconds()
        self.timer = asyncio.get_running_loop().call_later(timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.is_connect:
            line_end = self.buffer.find(b"\n")
            if line_end < 0 and len(self.buffer) < MAX_CONNECT_HEAD:
                return  # not even the method yet
            if not self.buffer.startswith(b"CONNECT "):
                # The whole first head must arrive within the handshake timeout (a client
                # trickling header bytes would hold a handler forever); then aiohttp
                # judges the rest, its limits included.
                if _head_complete(self.buffer) or len(self.buffer) > MAX_REQUEST_HEAD:
                    self._hand_over()
                return
            self.is_connect = True
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.buffer) > MAX_CONNECT_HEAD:
                self._refuse(HeadersTooLarge("the CONNECT request head is larger than 16 KiB"))
            return
        assert self.transport is not None
        self.transport.pause_reading()  # the next bytes are the client's TLS hello
        self._stop_timer()
        if len(self.buffer) > head_end + 4:
            self._refuse(BadRequest("data arrived before the tunnel was established"))
            return
        head = bytes(self.buffer[:head_end])
        self.task = asyncio.get_running_loop().create_task(self._connect(head))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _too_slow(self) -> None:
        self.timer = None
        self._refuse(RequestTimeout("no complete request head in time"))

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _hand_over(self) -> None:
        """From here on the connection is aiohttp's, as if it had accepted it."""
        self._stop_timer()
        assert self.transport is not None
        handler = self.server()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        handler.data_received(bytes(self.buffer))
        self.buffer.clear()

    def _refuse(self, error: DMGateError) -> None:
        if self.is_connect:  # a slow head of a plain request is no CONNECT outcome
            self.edge.metrics.proxy_connects.labels(_OUTCOME.get(error.status, "refused")).inc()
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_answer(error))
        self.transport.close()

    async def _connect(self, head: bytes) -> None:
        try:
            await self._dispatch(head)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: end this connection, never the server
            log.exception("connect_failed")
            if self.transport is not None:
                self.transport.abort()

    async def _dispatch(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._refuse(BadRequest("malformed CONNECT request line"))
            return
        headers = _headers(lines[1:])
        if not access.proxy_authorized(self.edge.settings, headers.get("proxy-authorization")):
            self._refuse(ProxyAuthRequired("proxy authentication required"))
            return
        try:
            host, port = access.parse_authority(parts[1])
        except ValueError as exc:
            self._refuse(Forbidden(str(exc)))
            return
        decision = access.decide(self.edge.settings, host, port)
        if isinstance(decision, access.Refuse):
            log.info("connect_refused", host=host, port=port)
            self._refuse(Forbidden(decision.detail))
            return
        if isinstance(decision, access.Intercept):
            await self._intercept(decision)
        else:
            await self._tunnel(decision)

    async def _intercept(self, target: access.Intercept) -> None:
        certs = self.edge.certs
        if certs is None:
            self._refuse(
                ForwardModeUnavailable(
                    "forward mode is unavailable: dmgate has no CA (see its log)"
                )
            )
            return
        try:
            tls_context = certs.context_for(target.host)
        except CAError as exc:
            log.warning("connect_not_intercepted", host=target.host, reason=str(exc))
            self._refuse(ForwardModeUnavailable(str(exc)))
            return
        transport = self.transport
        assert transport is not None
        transport.write(_ESTABLISHED)
        handler = self.server()
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport,
                handler,
                tls_context,
                server_side=True,
                ssl_handshake_timeout=self.edge.settings.client_handshake_timeout.total_seconds(),
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            # Most often: the client does not trust dmgate's CA yet.
            self.edge.metrics.proxy_connects.labels("tls_failed").inc()
            log.info("tls_handshake_failed", host=target.host, error=_tls_error(exc))
            transport.abort()
            return
        if tls is None:  # the client went away during the handshake
            return
        self.edge.metrics.proxy_connects.labels("intercepted").inc()
        # start_tls does not announce the new transport to its protocol.
        handler.connection_made(tls)

    async def _tunnel(self, target: access.Tunnel) -> None:
        settings = self.edge.settings
        connect_timeout = settings.upstream_connect_timeout.total_seconds()
        try:
            addresses = await asyncio.wait_for(
                tunnel.resolve_public(target.host, target.port, settings.tunnel_private),
                connect_timeout,
            )
        except tunnel.TunnelRefused as exc:
            self._refuse(Forbidden(str(exc)))
            return
        except (OSError, TimeoutError):
            self._refuse(UpstreamUnavailable(f"{target.host} does not resolve"))
            return
        try:
            upstream, pipe = await tunnel.open_upstream(addresses, target.port, connect_timeout)
        except OSError:
            self._refuse(UpstreamUnavailable(f"could not connect to {target.host}:{target.port}"))
            return
        client = self.transport
        if client is None or client.is_closing():
            upstream.close()
            return
        client.write(_ESTABLISHED)
        client_pipe = tunnel.splice(client, upstream, pipe)
        self.edge.metrics.proxy_connects.labels("tunnelled").inc()
        self.tunnels.add(client)
        try:
            await client_pipe.closed
        finally:
            self.tunnels.discard(client)
            upstream.close()


def _head_complete(buffer: bytearray) -> bool:
    return b"\r\n\r\n" in buffer or b"\n\n" in buffer


_OUTCOME = {407: "auth_required", 503: "unavailable", 502: "upstream_failed"}


def _headers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _answer(error: DMGateError) -> bytes:
    """The error as a complete HTTP/1.1 answer that closes the connection (no aiohttp
    handler owns it yet), the same JSON as every dmgate error."""
    body = error.body()
    lines = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in error.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _tls_error(exc: BaseException) -> str:
    reason: Any = getattr(exc, "reason", None)
    return str(reason or type(exc).__name__)[:200]


def _access_log(enabled: bool) -> dict[str, Any]:
    if not enabled:
        return {"access_log": None}
    return {"access_log": logging.getLogger("dmgate.access"), "access_log_class": AccessLog}


def run(
    app: web.Application,
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop,
    announce: Any,
    shutdown_timeout: float = 10.0,
    sock: socket.socket | None = None,
) -> None:
    """Serve `app` on one port for every mode until SIGINT/SIGTERM (web.run_app's job,
    with the site that routes CONNECT). `sock`: a listening socket shared with other
    workers (then `host`/`port` only name it)."""
    settings = app[CTX].settings

    async def serve() -> None:
        runner = web.AppRunner(
            app,
            **_access_log(settings.access_log),
            # Bodies reach the upstream exactly as the tool sent them (a gzip body stays
            # gzip); the gateway decompresses its own copy of a DM to judge it.
            auto_decompress=False,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=settings.keepalive_timeout.total_seconds(),
        )
        await runner.setup()
        try:
            site = ProxySite(runner, host, port, sock)
            await site.start()
            announce(f"======== Running on {site.name} ========")
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve())
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
