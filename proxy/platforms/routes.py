"""How a platform's router could read a path, for classification, shared by every adapter.

`normalize_path` (base) has already removed empty and `.` segments, applied `..`, dropped
`;params` and trailing slashes. On top of that a route here matches:

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
from collections.abc import Collection, Iterable, Mapping

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.platforms.base import RefusedRequest, RequestView

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
