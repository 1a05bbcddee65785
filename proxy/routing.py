"""From the request line to an upstream URL — the only place that decides where a request
may go. dmgate never forwards to an address a client chose: the host always comes from the
route's configured upstream, and the path must stay inside the route."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from aiohttp import web
from yarl import URL

from proxy.errors import BadRequest, MethodNotAllowed, NotFound
from proxy.settings import Route


@dataclass(frozen=True)
class Target:
    route_name: str
    route: Route
    path: str  # below the route prefix, percent-decoded, for the platform adapter
    url: URL  # the upstream URL, path and query byte-for-byte as the tool sent them


def resolve(request: web.Request, routes: dict[str, Route]) -> Target:
    if request.method == "CONNECT":
        raise MethodNotAllowed(
            "CONNECT is not accepted: dmgate runs in reverse-proxy mode "
            "(call http://dmgate/{route}/… instead)"
        )
    # `raw_path` is the request-target exactly as the request line carried it: not
    # normalised (the router saw `/x/../api` as `/api`; this still says `/x/../api`), not
    # decoded, and for an absolute-form request the whole `http://host/…`. It never holds
    # raw non-ASCII bytes: aiohttp's parser answers those 400 itself (RFC 3986 allows only
    # percent-encoded octets), so no request gets this far with an ambiguous encoding.
    raw_target = request.raw_path
    if not raw_target.startswith("/"):
        raise BadRequest(
            "absolute-form request targets are not accepted: call "
            "http://dmgate/{route}/{path} (reverse mode)"
        )
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
    base = _upstream_url(route.upstream)
    # Built from parts with encoded=True: the host can only be the route's, and yarl (and
    # aiohttp after it) send path and query as they are, never re-quoted. One byte is lost:
    # a bare `?` with nothing after it (yarl has no empty-query form).
    url = URL.build(
        scheme=base.scheme,
        host=base.raw_host or "",
        port=base.explicit_port,
        path=base.raw_path.rstrip("/") + remainder,
        query_string=raw_query,
        encoded=True,
    )
    return Target(route_name, route, decoded or "/", url)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=256)
def _upstream_url(upstream: str) -> URL:
    return URL(upstream)


def _checked_path(raw: str) -> str:
    """Refuse dot segments, however encoded: a path must not climb out of its route."""
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
