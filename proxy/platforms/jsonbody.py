"""Strict JSON for DM request bodies, shared by every adapter.

Strict because the text dmgate judges must be the text the platform will read: a body
with a key twice (`{"text": "hi", "text": "buy now"}`), NaN, or bytes that are not UTF-8
could be read differently by the platform's parser, so it is refused (400), never guessed.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.platforms.base import BadDMRequest


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKeyError(key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json_object(body: bytes, what: str = "DM request body") -> dict[str, Any]:
    """`body` as a JSON object, or `BadDMRequest` (400) naming `what` was wrong."""
    doc = load_json(body, what)
    if not isinstance(doc, dict):
        raise BadDMRequest(f"{what} must be a JSON object", 400)
    return doc


def load_json(body: bytes, what: str = "DM request body") -> Any:
    """`body` as any strict JSON value (an array too), or `BadDMRequest` (400)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadDMRequest(f"{what} is not UTF-8", 400) from exc
    try:
        doc = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except _DuplicateKeyError as exc:
        raise BadDMRequest(f"{what} has the key {exc} twice", 400) from exc
    except (ValueError, RecursionError) as exc:
        raise BadDMRequest(f"{what} is not valid JSON: {exc}", 400) from exc
    return doc


def dump_json(doc: Any) -> bytes:
    """Compact UTF-8 JSON, as the platforms' own clients send it."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
