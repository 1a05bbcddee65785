"""Parser differentials on DM endpoints, refused the same way by every adapter.

A DM is judged on what dmgate reads; the platform acts on what its own framework reads.
Where the two could differ, the request is refused (`BadDMRequest`, 400, naming the
ambiguity) and never forwarded — a tool that means one message never needs any of these:

- a key twice in the query, a form body or a multipart body (Rack and Rails keep the
  last, Go's `url.Values.Get` and PHP the first, Graph does not say): which copy is sent?
  Keys with the array suffix `[]` (`poll[options][]`, `media_ids[]`) are lists in Rails
  and may repeat where the adapter says so;
- a `;` in the query string: Rack 2 (Mastodon until Rails 7.1) splits on it like on `&`,
  most other parsers do not, so `a=1;status=…` is one parameter here and two there;
- a parameter in both the query string and the body: Rails merges them (the query wins),
  others read only one;
- a multipart part with two `Content-Disposition` headers, or two `name=` (or
  `filename=`) parameters in one: Rack reads the last `name=`, a first-match reader the
  first, so the part's field name itself is ambiguous;
- a multipart part whose name or value only some parsers decode: RFC 2231 parameters
  (`name*=utf-8''status`, `name*0=`), RFC 2047 encoded words (`name="=?utf-8?q?…?="`), a
  `Content-Transfer-Encoding` that changes the bytes (base64, quoted-printable), a header
  folded over two lines. Python's `email` package reads all of them, Rack none.

JSON objects with a key twice are refused by `jsonbody.load_json` (same reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from urllib.parse import parse_qsl

from proxy.platforms.base import BadDMRequest, RequestView


def is_list_key(key: str) -> bool:
    """Rails' array parameters (`media_ids[]`, `poll[options][]`): repeating is their point."""
    return key.endswith("[]")


def never(key: str) -> bool:
    return False


def unique_pairs(
    pairs: Iterable[tuple[str, str]], where: str, repeatable: Callable[[str], bool] = never
) -> dict[str, str]:
    """Every key once (unless `repeatable(key)`: then the last value, the adapter reads
    those from the pairs themselves), or 400 naming the key and `where`."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out and not repeatable(key):
            raise BadDMRequest(
                f"{key} is given twice in the {where}: the platform could read either copy",
                400,
            )
        out[key] = value
    return out


def check_query(req: RequestView, repeatable: Callable[[str], bool] = never) -> dict[str, str]:
    """The query parameters of a DM request, each once, split only on `&`."""
    if ";" in req.query_string:
        raise BadDMRequest(
            "';' in the query string is refused: some frameworks split parameters on it, "
            "others do not, so the platform could read other parameters than dmgate",
            400,
        )
    return unique_pairs(req.query.items(), "query string", repeatable)


def check_form(
    body: bytes, where: str = "form body", repeatable: Callable[[str], bool] = never
) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body's pairs in order, each key once, with no
    `;` separator; 400 for bytes that are not UTF-8 form data."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadDMRequest(f"the {where} is not valid form data: {exc}", 400) from exc
    if any(";" in piece.partition("=")[0] for piece in text.split("&")):
        raise BadDMRequest(f"';' in a {where} key is refused: parsers split on it or not", 400)
    unique_pairs(pairs, where, repeatable)
    return pairs


def not_in_both(
    query: Collection[str], body: Collection[str], names: Collection[str] | None = None
) -> None:
    """400 if a parameter (of `names`, or any) is in both the query string and the body."""
    both = set(query) & set(body)
    if names is not None:
        both &= set(names)
    if both:
        name = sorted(both)[0]
        raise BadDMRequest(
            f"{name} is given both in the query string and the body: the platform could "
            "read either",
            400,
        )


def check_json_request(req: RequestView, doc: Collection[str]) -> dict[str, str]:
    """For a DM whose body is a JSON object `doc` (its duplicate keys already refused by
    `jsonbody`): the query's parameters each once, no `;`, and none also in the body."""
    query = check_query(req)
    not_in_both(query, doc)
    return query


def disposition_params(value: str) -> dict[str, str]:
    """The parameters of one `Content-Disposition` value (`form-data; name="status"`),
    each once (two `name=` in one part: Rack reads the last, others the first), names in
    lower case, quotes removed."""
    params: dict[str, str] = {}
    for piece in _split_params(value)[1:]:
        key, eq, raw = piece.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key in params:
            raise BadDMRequest(
                f"a multipart part names {key}= twice in its Content-Disposition: the "
                "platform could read either",
                400,
            )
        if "*" in key:
            raise BadDMRequest(
                f"a multipart part's Content-Disposition has the RFC 2231 parameter {key}: "
                "some parsers decode it, others ignore it",
                400,
            )
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key in ("name", "filename") and "=?" in raw:
            raise BadDMRequest(
                f"a multipart part's {key} is an RFC 2047 encoded word: some parsers decode "
                "it, others read it as it is",
                400,
            )
        params[key] = raw if eq else ""
    return params


# Transfer encodings that leave a part's bytes as they are (RFC 7578 §4.7 deprecates the
# header for form data; Rack ignores it, Python's `email` decodes base64 and QP).
_IDENTITY_TRANSFER = frozenset({"7bit", "8bit", "binary"})


def part_disposition(headers: Iterable[tuple[str, str]]) -> str | None:
    """A multipart part's one `Content-Disposition` value (None without one), once its
    headers are known to read alike everywhere: 400 for a header folded over lines, a
    `Content-Transfer-Encoding` that changes the bytes, or a header given twice."""
    items = list(headers)
    for key, value in items:
        if "\n" in value or "\r" in value or key[:1] in (" ", "\t"):
            raise BadDMRequest(
                "a multipart part has a header folded over lines: some parsers join the "
                "lines, others end the header there",
                400,
            )
    encoding = one_header(items, "content-transfer-encoding")
    if encoding is not None and encoding.strip().lower() not in _IDENTITY_TRANSFER:
        raise BadDMRequest(
            f"a multipart part has Content-Transfer-Encoding {encoding.strip()!r}: some "
            "parsers decode it, others read the encoded bytes",
            400,
        )
    return one_header(items, "content-disposition")


def one_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The one value of header `name` (lower case) among a multipart part's headers, None
    without it, 400 if it is given twice."""
    values = [v for k, v in headers if k.strip().lower() == name]
    if len(values) > 1:
        raise BadDMRequest(f"a multipart part has two {name} headers", 400)
    return values[0] if values else None


def _split_params(value: str) -> list[str]:
    """`;`-separated pieces of a header value, `;` inside quotes kept."""
    pieces, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces
