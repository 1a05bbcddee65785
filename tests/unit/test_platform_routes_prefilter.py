"""`RouteTable.classify` first asks one pattern combining every route's whether any route
could match; it must say yes for every path some route matches, in any spelling."""

from __future__ import annotations

import re
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.platforms import PLATFORMS
from proxy.platforms.base import Classified, RefusedRequest, RequestView
from proxy.platforms.routes import RouteTable

# A path every route's pattern matches, written out from the pattern itself, then spelled
# the ways normalize_path and the patterns accept (case, extension, trailing slash, dots)
# and a few ways they do not.
_SPELLINGS = (
    lambda p: p,
    str.upper,
    lambda p: p + ".json",
    lambda p: p + "/",
    lambda p: "/x/.." + p,
    lambda p: p + "/extra",
    lambda p: p[:-1],
)


def _example(parsed: Any, optional: bool) -> str:
    """One string `parsed` (re._parser's tree) matches: optional parts in or out."""
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name in ("IN", "NOT_LITERAL", "ANY"):
            out.append("1")
        elif name == "SUBPATTERN":
            out.append(_example(arg[-1], optional))
        elif name == "BRANCH":
            out.append(_example(arg[1][0], optional))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, _, item = arg
            out.append(_example(item, optional) * (low if not optional else max(low, 1)))
    return "".join(out)


def _paths(table: RouteTable) -> set[str]:
    paths = {"/", "/2/users/me", "/api/v1/timelines/home", "/xrpc/app.bsky.feed.getTimeline"}
    for route in table.routes:
        for optional in (False, True):
            path = _example(re._parser.parse(route.pattern.pattern), optional)  # type: ignore[attr-defined]
            paths.update(spell(path) for spell in _SPELLINGS if path.startswith("/"))
    return paths


def _classified(table: RouteTable, req: RequestView) -> tuple[str, ...] | str:
    try:
        call: Classified = table.classify(req)
    except RefusedRequest as exc:
        return f"refused {exc.status}"
    return (call.kind.value, call.endpoint, *sorted(call.params.items()))  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_combined_pattern_never_decides_otherwise_than_the_routes(platform):
    table = PLATFORMS[platform]().routes
    assert table._any is not None  # every adapter's routes combine
    unfiltered = RouteTable(*table.routes)
    unfiltered._any = None
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
    query = MultiDictProxy(MultiDict())
    matched = 0
    for path in sorted(_paths(table)):
        for method in ("GET", "POST", "PUT", "DELETE"):
            req = RequestView(method, path, query, headers)
            expected = _classified(unfiltered, req)
            assert _classified(table, req) == expected, (method, path)
            matched += expected[0] != "passthrough"
    assert matched  # the paths did reach routes
