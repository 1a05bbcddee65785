"""Who may use dmgate as a forward proxy, and where to: the decisions, free of I/O.

A CONNECT to a host a route owns is intercepted (the DM pipeline sees its requests); a
CONNECT to a host on the tunnel allow-list is tunnelled blindly; everything else is
refused. dmgate is not an open proxy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from proxy.settings import Route, Settings, dns_name, split_host_port, tunnel_matches

INTERCEPT_PORT = 443


@dataclass(frozen=True)
class Intercept:
    host: str
    route_name: str
    route: Route


@dataclass(frozen=True)
class Tunnel:
    host: str
    port: int


@dataclass(frozen=True)
class Refuse:
    detail: str


def parse_authority(target: str) -> tuple[str, int]:
    """`host:port` of a CONNECT request. Raises ValueError (IP literals included: a tool
    that knows only an address is not asking for a platform dmgate understands)."""
    try:
        host, port = split_host_port(target)
    except ValueError:
        raise ValueError(f"CONNECT needs host:port, got {target[:100]!r}") from None
    if host.startswith("["):
        raise ValueError("CONNECT to an IP address is refused: name the host")
    try:
        return dns_name(host), port
    except ValueError:
        raise ValueError(
            f"CONNECT to {host[:100]!r} is refused: not a DNS host name (IP addresses are "
            "not accepted)"
        ) from None


def decide(settings: Settings, host: str, port: int) -> Intercept | Tunnel | Refuse:
    owned = settings.host_routes.get(host)
    if owned is not None:
        if port != INTERCEPT_PORT:
            return Refuse(f"{host} is intercepted on port 443 only, not {port}")
        return Intercept(host, owned[0], owned[1])
    for pattern, allowed_port in settings.tunnel_hosts:
        if allowed_port == port and tunnel_matches(pattern, host):
            return Tunnel(host, port)
    return Refuse(
        f"CONNECT to {host}:{port} is refused: no route owns this host and it is not in "
        "DMGATE_TUNNEL_HOSTS",
    )


def proxy_authorized(settings: Settings, header: str | None) -> bool:
    """True when no proxy credentials are configured, or `Proxy-Authorization` carries
    one of them (Basic)."""
    if not settings.proxy_auth:
        return True
    if not header:
        return False
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        user, sep, password = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep:
        return False
    ok = False
    for name, secret in settings.proxy_auth:
        # Compare every entry in constant time: the answer's timing says nothing.
        ok |= hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(
            secret.get_secret_value().encode(), password.encode()
        )
    return ok
