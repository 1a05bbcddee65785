"""From the request line to an upstream URL — the only place that decides where a request
may go. dmgate never forwards to an address a client chose: the host always comes from the
route's configured upstream, and the path must stay inside the route.

Three ways in, one `Target` out:
- reverse mode, `/{route}/{path}`;
- forward mode, intercepted: a request inside a CONNECT tunnel to a host a route owns (its
  TLS context names the host);
- forward mode, plain: an absolute-form request `http://host/path` to such a host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from yarl import URL

from proxy.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    MisdirectedRequest,
    NotFound,
    ProxyAuthRequired,
)
from proxy.forward_mode import access
from proxy.forward_mode.certs import InterceptContext
from proxy.settings import Route, Settings


@dataclass(frozen=True)
class Target:
    route_name: str
    route: Route
    path: str  # below the route prefix, percent-decoded, for the platform adapter
    url: URL  # the upstream URL, path and query byte-for-byte as the tool sent them
    # Forward mode: the host the tool called, sent upstream as `Host` and TLS server name.
    host: str | None = None


CONNECT_NOT_FIRST = (
    "CONNECT must be the first request on a new connection to dmgate "
    "(forward mode: HTTPS_PROXY=http://dmgate:8080)"
)


def intercepted_host(request: web.Request) -> str | None:
    """The CONNECT host when this request came through an intercepted tunnel."""
    transport = request.transport
    if transport is None:
        return None
    context = transport.get_extra_info("sslcontext")
    return context.host if isinstance(context, InterceptContext) else None


def is_forward_mode(request: web.Request) -> bool:
    """Forward-mode requests belong to the platform's host, never to dmgate's own API."""
    return not request.raw_path.startswith("/") or intercepted_host(request) is not None


def resolve(request: web.Request, settings: Settings) -> Target:
    if request.method == "CONNECT":
        raise MethodNotAllowed(CONNECT_NOT_FIRST)
    host = intercepted_host(request)
    if host is not None:
        return _intercepted(request, settings, host)
    if not request.raw_path.startswith("/"):
        return _absolute_form(request, settings)
    return _reverse(request, settings.routes)


def _intercepted(request: web.Request, settings: Settings, host: str) -> Target:
    raw_target = request.raw_path
    if not raw_target.startswith("/"):
        url = URL(raw_target, encoded=True)
        if (url.host or "").lower() != host:
            raise MisdirectedRequest(f"this connection serves {host} only, not {url.host}")
        raw_target = url.raw_path_qs
    # RFC 9110 §7.4: a request for another authority on this connection is misdirected.
    # (An HTTP/1.0 request may carry no Host: then it is the tunnel's.)
    authority = request.headers.get("Host", host).lower().removesuffix(":443").rstrip(".")
    if authority != host:
        raise MisdirectedRequest(f"this connection serves {host} only; Host says {authority!r}")
    owned = settings.host_routes.get(host)
    if owned is None:  # CONNECT checked this; a bug must not send it anywhere else
        raise Forbidden(f"no route owns {host} any more")
    return _forward_target(owned[0], owned[1], host, raw_target)


def _absolute_form(request: web.Request, settings: Settings) -> Target:
    if not access.proxy_authorized(settings, request.headers.get("Proxy-Authorization")):
        raise ProxyAuthRequired("proxy authentication required")
    url = URL(request.raw_path, encoded=True)
    host = (url.host or "").lower().rstrip(".")
    owned = settings.host_routes.get(host)
    if owned is None or url.scheme not in ("http", "https") or not url.is_default_port():
        raise Forbidden(
            f"dmgate forwards proxy requests only to hosts its routes own, on their default "
            f"port; not {url.scheme}://{url.raw_authority} (other hosts: NO_PROXY)"
        )
    return _forward_target(owned[0], owned[1], host, url.raw_path_qs)


def _forward_target(route_name: str, route: Route, host: str, raw_target: str) -> Target:
    raw_target = raw_target.split("#", 1)[0]
    raw_path, _, raw_query = raw_target.partition("?")
    decoded = _checked_path(raw_path)
    return Target(route_name, route, decoded or "/", _upstream(route, raw_path, raw_query), host)


def _reverse(request: web.Request, routes: dict[str, Route]) -> Target:
    # `raw_path` is the request-target exactly as the request line carried it: not
    # normalised (the router saw `/x/../api` as `/api`; this still says `/x/../api`), not
    # decoded, and for an absolute-form request the whole `http://host/…`. It never holds
    # raw non-ASCII bytes: aiohttp's parser answers those 400 itself (RFC 3986 allows only
    # percent-encoded octets), so no request gets this far with an ambiguous encoding.
    raw_target = request.raw_path
    # A fragment is never part of a request (RFC 9112 §3.2); the parser lets one through,
    # and anything after it — a `?` included — must not reach the upstream as a query.
    raw_target = raw_target.split("#", 1)[0]
    raw_path, _, raw_query = raw_target.partition("?")
    _, _, rest = raw_path.partition("/")
    route_name, slash, remainder = rest.partition("/")
    route = routes.get(route_name)
    if route is None:
        raise NotFound(
            f"no route named {route_name!r}; configured routes: "
            f"{', '.join(sorted(routes)) or 'none'}"
        )
    remainder = slash + remainder
    decoded = _checked_path(remainder)
    return Target(route_name, route, decoded or "/", _upstream(route, remainder, raw_query))


def upstream_for(target: Target, path: str, query: Mapping[str, str]) -> URL:
    """The upstream URL of a request dmgate itself makes on a route (an identity lookup):
    `path` below the route, unencoded; same host as `target`."""
    return _upstream(target.route, quote(path, safe="/:@!$&'()*+,;="), urlencode(query))


def _upstream(route: Route, raw_path: str, raw_query: str) -> URL:
    scheme, host, port, prefix = _upstream_parts(route.upstream)
    # Built from parts with encoded=True: the host can only be the route's, and yarl (and
    # aiohttp after it) send path and query as they are, never re-quoted. One byte is lost:
    # a bare `?` with nothing after it (yarl has no empty-query form).
    return URL.build(
        scheme=scheme,
        host=host,
        port=port,
        path=prefix + raw_path,
        query_string=raw_query,
        encoded=True,
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=256)
def _upstream_parts(upstream: str) -> tuple[str, str, int | None, str]:
    """Scheme, host, explicit port and path prefix of a route's upstream URL."""
    base = URL(upstream)
    return base.scheme, base.raw_host or "", base.explicit_port, base.raw_path.rstrip("/")


def _checked_path(raw: str) -> str:
    """Refuse dot segments, however encoded: a path must not climb out of its route."""
    if raw[:1] in ("/", "") and "%" not in raw and "/." not in raw and "\\" not in raw:
        # Nothing encoded and no segment starting with a dot: what it says is what it is
        # (the usual case, and the one every pass-through request pays for).
        if _CONTROL.search(raw):
            raise BadRequest("control characters are not allowed in the path")
        return raw
    decoded = raw
    # Decode until stable so double-encoded dots (%252e) are caught too.
    for _ in range(8):
        nxt = unquote(decoded)
        if nxt == decoded:
            break
        decoded = nxt
    else:
        raise BadRequest("the path is percent-encoded too many times over")
    for segment in decoded.replace("\\", "/").split("/"):
        if segment in (".", ".."):
            raise BadRequest("path traversal ('.' or '..' segments) is not allowed")
    if _CONTROL.search(decoded):
        raise BadRequest("control characters are not allowed in the path")
    return decoded if decoded is raw else unquote(raw)
