"""How a platform's router could read a path, for classification, shared by every adapter.

Each adapter lists its endpoints in one `RouteTable` of `Route`s; `RouteTable.classify`
is the one matcher. `normalize_path` (base) has already removed empty and `.` segments,
applied `..`, dropped `;params` and trailing slashes. On top of that a route here matches:

- literal segments case-insensitively: some servers route that way, and judging a send the
  platform would 404 is harmless while forwarding one it would route unjudged is not;
- path parameters exactly as sent: LinkedIn URNs and DIDs are case-sensitive, so an id is
  never folded by the matcher (the ids module canonicalises what can be);
- an optional extension on the last segment (`/api/v1/statuses.json` or `.xml`: Rails
  routes any format suffix to the same action; X v1.1's `.json`).

Another method on a DM-send path is refused (`refuse_other_methods`): a server might act on
a `PUT` or a method-override as a send, and dmgate cannot judge what it does not read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.platforms.base import Classified, Kind, RefusedRequest, RequestView, normalize_path

PARAM = r"[^/]+"
# Any suffix starting with a dot: Rails' `(.:format)` takes one, and more is harmless.
EXTENSION = r"(?:\.[^/]*)?"
SAFE_READS = frozenset({"GET", "HEAD"})


def route_pattern(
    *templates: str,
    prefix: str = "",
    params: Mapping[str, str] | None = None,
    extension: bool = True,
) -> re.Pattern[str]:
    """Compile `/2/dm_conversations/with/{participant_id}/messages` (several templates are
    alternatives; only one of them may name parameters): literals case-insensitive,
    `{name}` a named group matching one segment (or `params[name]`), `prefix` a regex
    put in front (Graph's optional version), then an optional extension."""
    alternatives = []
    for template in templates:
        pieces = re.split(r"\{(\w+)\}", template)
        regex = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                if piece:
                    regex.append(f"(?i:{re.escape(piece)})")
            else:
                regex.append(f"(?P<{piece}>{(params or {}).get(piece, PARAM)})")
        alternatives.append("".join(regex))
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return re.compile(prefix + body + (EXTENSION if extension else ""))


@dataclass(frozen=True)
class Route:
    """One endpoint: `method` on a path `pattern` fully matches is a `kind` of request,
    known to the adapter as `endpoint`."""

    endpoint: str
    method: str
    kind: Kind
    pattern: re.Pattern[str]
    # DM routes: the methods the platform genuinely serves on the send path besides the
    # send (reads), which pass; any other method there is refused. `guarded=False`: other
    # methods pass too (a path whose sends travel inside the body, like Graph batches).
    reads: frozenset[str] = frozenset()
    guarded: bool = True
    # A condition on the rest of the request (a query parameter), checked for `method`
    # only: the path alone still makes a send path.
    when: Callable[[RequestView], bool] | None = None
    # A DM send dmgate does not judge, and why (with what to send instead): refused with
    # 400 before its body is read as a DM (`Classified.dm_endpoint`), never forwarded.
    refused: str = ""


class RouteTable:
    """An adapter's endpoints, first match wins."""

    def __init__(self, *routes: Route) -> None:
        self.routes = routes
        self._any = _any_of(routes)

    def classify(self, req: RequestView, method: str | None = None) -> Classified:
        """The request as `method` (default: its own) on its normalised path: the first
        route that matches, or passthrough; another method on a DM-send path raises
        `RefusedRequest`."""
        path = normalize_path(req.path)
        if self._any is not None and self._any.fullmatch(path) is None:
            return Classified(req, Kind.PASSTHROUGH)  # no route's path: what most are
        method = method or req.method.upper()
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.fullmatch(path)
            if m is None or (route.when is not None and not route.when(req)):
                continue
            params = {k: v for k, v in m.groupdict().items() if v is not None}
            return Classified(req, route.kind, route.endpoint, params, route.refused)
        send = next(
            (r for r in self.routes if r.kind is Kind.DM and r.pattern.fullmatch(path)), None
        )
        if send is not None and send.guarded:
            refuse_other_methods(req, send.method, send.reads)
        return Classified(req, Kind.PASSTHROUGH)


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _any_of(routes: Iterable[Route]) -> re.Pattern[str] | None:
    """One pattern that fully matches exactly the paths some route's pattern fully
    matches: one regex search instead of one per route (~10 µs on every pass-through
    request of a platform route). None where patterns do not combine plainly (global
    flags, back-references): then every route is tried, as always."""
    alternatives = []
    for route in routes:
        pattern = route.pattern
        if pattern.flags != re.UNICODE or "(?P=" in pattern.pattern:
            return None
        # Named groups become plain ones: two routes may name the same parameter.
        alternatives.append("(?:" + _NAMED_GROUP.sub("(?:", pattern.pattern) + ")")
    return re.compile("|".join(alternatives)) if alternatives else None


def is_cors_preflight(req: RequestView) -> bool:
    """A browser's CORS preflight: OPTIONS naming the method it wants, with no body (the
    Fetch standard sends none). Servers answer it without running the route's action, so
    it is no send; web clients (Mastodon, Bluesky) need it answered to send at all."""
    if req.method.upper() != "OPTIONS" or "Access-Control-Request-Method" not in req.headers:
        return False
    if "Transfer-Encoding" in req.headers:
        return False
    return req.headers.get("Content-Length", "0").strip() in ("", "0")


def refuse_other_methods(
    req: RequestView, send_method: str = "POST", reads: Collection[str] = ()
) -> None:
    """For a request on a DM-send path: return if it is the send itself, one of the
    `reads` the platform genuinely serves on that path, or a CORS preflight; else raise
    `RefusedRequest` (405, never forwarded)."""
    method = req.method.upper()
    if method == send_method or method in reads or is_cors_preflight(req):
        return
    raise RefusedRequest(
        f"{method} {req.path} refused: DM-send paths accept only {send_method} (the send, "
        f"which dmgate judges); dmgate does not forward {method} there",
        405,
    )


# --- the credential and the "who am I" call --------------------------------------------


def authorization(req: RequestView) -> tuple[str, str]:
    """The `Authorization` header as (scheme in lower case, credentials); ("", "") when
    there is none."""
    scheme, _, rest = req.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower(), rest.strip()


def identity_view(
    path: str,
    headers: Iterable[tuple[str, str]] = (),
    query: Iterable[tuple[str, str]] = (),
) -> RequestView:
    """A GET `RequestView` for a platform's "who am I" call (`Platform.whoami`)."""
    return RequestView(
        "GET",
        path,
        MultiDictProxy(MultiDict(list(query))),
        CIMultiDictProxy(CIMultiDict(list(headers))),
    )


def copy_headers(req: RequestView, names: Iterable[str]) -> list[tuple[str, str]]:
    """Every value of each named header (repeated `Cookie` headers stay repeated)."""
    return [(name, value) for name in names for value in req.headers.getall(name, [])]


def identity_view_with_authorization(
    req: RequestView,
    path: str,
    schemes: Collection[str] = ("bearer",),
    query: Iterable[tuple[str, str]] = (),
) -> RequestView | None:
    """The "who am I" call `path` carrying `req`'s `Authorization` header (and nothing
    else of it), if that header is one of `schemes` with credentials; else None."""
    scheme, rest = authorization(req)
    if scheme not in schemes or not rest:
        return None
    return identity_view(path, copy_headers(req, ["Authorization"]), query)
