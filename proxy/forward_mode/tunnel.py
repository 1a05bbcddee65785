"""Blind tunnels for allow-listed hosts: bytes both ways, nothing read.

The destination address is resolved and checked here and then connected to exactly, so a
DNS answer cannot change between the check and the connection (no rebinding into the
network dmgate runs in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import cast


class TunnelRefused(Exception):
    """The host resolves only to addresses a tunnel may not reach."""


async def resolve_public(host: str, port: int, allow_private: bool) -> list[tuple[int, str]]:
    """(family, address) pairs for `host`, without loopback/private/link-local/multicast
    ones unless `allow_private`. Raises TunnelRefused when nothing is left, OSError when
    the name does not resolve."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allowed: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if allow_private or ip.is_global:
            allowed.append((family, address))
    if not allowed:
        raise TunnelRefused(
            f"{host} resolves only to non-public addresses; tunnels there need "
            "DMGATE_TUNNEL_PRIVATE=true"
        )
    return allowed


class _Pipe(asyncio.Protocol):
    """One side of a tunnel: what arrives is written to the peer, with backpressure both
    ways (a slow reader pauses the fast writer instead of growing a buffer)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.early = bytearray()  # what arrived before the other side was joined
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def attach(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        if self.early:
            peer.write(bytes(self.early))
            self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)
        else:
            self.early += data

    def eof_received(self) -> bool:
        # Half-close: pass the end on and keep reading the other way.
        if self.peer is not None and self.peer.can_write_eof():
            self.peer.write_eof()
            return True
        return False

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()
        if not self.closed.done():
            self.closed.set_result(None)


async def open_upstream(
    addresses: list[tuple[int, str]], port: int, connect_timeout: float
) -> tuple[asyncio.Transport, _Pipe]:
    """Connect to the first address that answers."""
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    for family, address in addresses:
        try:
            transport, pipe = await asyncio.wait_for(
                loop.create_connection(_Pipe, address, port, family=family), connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            last = exc
            continue
        return transport, pipe
    raise OSError(f"no address answered ({type(last).__name__})")


def splice(client: asyncio.Transport, upstream: asyncio.Transport, upstream_pipe: _Pipe) -> _Pipe:
    """Join an accepted client connection to a connected upstream one."""
    client_pipe = _Pipe()
    client_pipe.connection_made(client)
    client_pipe.attach(upstream)
    upstream_pipe.attach(client)
    client.set_protocol(client_pipe)
    client.resume_reading()
    return client_pipe
