"""Requests the upstream could read differently from dmgate, refused before anything is
forwarded: a gate judges the request the platform will act on, or none at all.

- Method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`
  headers; a `_method` parameter in the query or a form body): frameworks such as Rails
  (Mastodon) and many API gateways act on the overriding method, so dmgate would judge a
  POST the platform treats as a PUT, or the other way round. Refused on every route.
- A `Connection` header naming an end-to-end header dmgate judges on: dmgate (RFC 9110
  §7.6.1) would drop that header on the way, so the upstream would read another request
  than the one judged (a DM judged as JSON arriving without its Content-Type, a credential
  judged that never reaches the platform).
- A DM body in a content coding dmgate cannot decode, or that decodes beyond the DM size
  limit (a decompression bomb).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from proxy.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

OVERRIDE_HEADERS = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
OVERRIDE_PARAM = "_method"
# End-to-end headers whose absence would change what the upstream reads.
JUDGED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "authorization", "cookie", "host"}
)
_QUERY_SEPARATORS = re.compile(r"[&;]")


class MethodOverride(BadRequest):
    code = "method_override_refused"


def check_request_head(
    method: str, headers: CIMultiDictProxy[str], raw_query: str
) -> tuple[str, str] | None:
    """(reason, detail) when the request must be refused, else None. Cheap: a pass-through
    request without any of these pays three header lookups and one `in`."""
    for name in OVERRIDE_HEADERS:
        if name in headers:
            return "method_override", (
                f"the {name} header is refused: dmgate judges the method the request "
                f"line says ({method}), and the upstream could act on another"
            )
    if raw_query and ("%" in raw_query or "method" in raw_query.lower()):
        if any(_is_override_key(p) for p in _QUERY_SEPARATORS.split(raw_query)):
            return "method_override", (
                "a _method query parameter is refused: dmgate judges the method the "
                f"request line says ({method}), and the upstream could act on another"
            )
    if "Connection" in headers:
        for value in headers.getall("Connection"):
            for token in value.split(","):
                if token.strip().lower() in JUDGED_HEADERS:
                    return "connection_header", (
                        f"Connection lists {token.strip()!r}: dmgate would drop that header "
                        "on the way, so the upstream would read another request than the "
                        "one judged"
                    )
    return None


def _is_override_key(pair: str) -> bool:
    key = pair.split("=", 1)[0]
    try:
        return unquote_plus(key).strip().lower() == OVERRIDE_PARAM
    except ValueError:
        return False


def form_kind(content_type: str | None) -> str | None:
    """`urlencoded` / `multipart` for form bodies (where `_method` is read), else None."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return "urlencoded"
    if media.startswith("multipart/"):
        return "multipart"
    return None


def body_has_override(body: bytes, kind: str) -> bool:
    """Whether a whole form body carries `_method`."""
    if kind == "urlencoded":
        text = body.decode("latin-1")
        return any(_is_override_key(p) for p in _QUERY_SEPARATORS.split(text))
    return _MULTIPART_OVERRIDE.search(body) is not None


# A multipart part named `_method`, however its name parameter is spelled (quoted or
# not, extra spaces, RFC 2231 `name*=`).
_MULTIPART_OVERRIDE = re.compile(rb'(?i)\bname\*?\s*=\s*"?(?:utf-8\'\')?_method"?\s*(?:;|\r?\n)')


async def checked_form_stream(stream: StreamReader, kind: str) -> AsyncIterator[bytes]:
    """A pass-through form body, streamed, that stops with `MethodOverride` as soon as a
    `_method` field shows: the upstream's request is then cut off mid-body, so it never
    gets a complete request to act on."""
    tail = b""
    async for chunk in stream.iter_any():
        window = tail + chunk
        if body_has_override(window, kind):
            raise MethodOverride(
                "a _method form field is refused: the upstream could act on another "
                "method than the one dmgate judged"
            )
        # Keep enough of the end to catch a field split across two chunks (a urlencoded
        # key up to the next separator; a multipart name parameter).
        cut = max(window.rfind(b"&"), window.rfind(b";")) if kind == "urlencoded" else -1
        tail = window[cut + 1 :][-512:] if cut >= 0 else window[-512:]
        yield chunk


def decoded_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A DM body as the platform will read it, for judging (the original bytes are what is
    forwarded). Codings applied in order are undone in reverse."""
    if not encoding:
        return body
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, limit, coding)
        elif coding == "deflate":
            # RFC 9110 "deflate" is zlib-wrapped; some clients send raw deflate.
            try:
                body = _inflate(body, zlib.MAX_WBITS, limit, coding)
            except BadRequest:
                body = _inflate(body, -zlib.MAX_WBITS, limit, coding)
        else:
            raise UnsupportedMediaType(
                f"dmgate cannot judge a DM body in the content coding {coding!r} "
                "(gzip and deflate are understood); it was not forwarded"
            )
    return body


def _inflate(body: bytes, wbits: int, limit: int, coding: str) -> bytes:
    """Decompress, never past `limit` bytes of output (a bomb stops there). Concatenated
    gzip members are all read, as `gzip.decompress` does."""
    out = bytearray()
    rest = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise PayloadTooLarge(
                    f"the DM body decompresses to more than {limit} bytes", limit=limit
                )
            if not inflater.eof or inflater.unconsumed_tail:
                raise BadRequest(f"the DM body is not complete {coding} data")
            rest = inflater.unused_data
            if not rest or wbits != zlib.MAX_WBITS | 16:
                break
    except zlib.error:
        raise BadRequest(f"the DM body is not valid {coding} data") from None
    if rest:
        raise BadRequest(f"the DM body has bytes after its {coding} data")
    return bytes(out)
