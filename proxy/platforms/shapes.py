"""Small pieces of request and answer shapes that every network has in some form: times,
content types, message text, stand-in ids for held messages, names of users. Shared so an
adapter says only what is its network's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from proxy.facts import InboundMessage
from proxy.platforms.base import BadDMRequest, RequestView

# What X, Mastodon and Bluesky answer JSON with.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


# --- request bodies --------------------------------------------------------------------


# Charsets a DM body may declare: dmgate reads every body as UTF-8 (US-ASCII is a subset).
_READ_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def media_type(req: RequestView) -> str | None:
    """A DM request body's media type in lower case, without parameters; None without a
    `Content-Type`. 415 for a body declared in another charset than UTF-8 (`charset=
    utf-16-le`, `utf-7`, `iso-8859-1`): dmgate reads UTF-8, while a framework that honours
    the parameter reads other text from the same bytes (aiohttp's form parser does: a
    `visibility=direct` dmgate could not see)."""
    value = req.headers.get("Content-Type")
    if value is None:
        return None
    media, _, params = value.partition(";")
    for param in params.split(";"):
        key, _, charset = param.partition("=")
        charset = charset.strip().strip('"').strip().lower()
        if key.strip().lower() == "charset" and charset not in _READ_CHARSETS:
            raise BadDMRequest(
                f"a DM request body must be UTF-8; its Content-Type declares {charset!r}",
                415,
            )
    return media.strip().lower()


def require_json(req: RequestView, what: str) -> None:
    """`BadDMRequest` (415) unless the body is declared JSON or not declared at all (some
    tools send no `Content-Type`)."""
    media = media_type(req)
    if media is not None and media != "application/json":
        content_type = req.headers.get("Content-Type")
        raise BadDMRequest(f"{what} must be application/json, got {content_type!r}", 415)


def json_object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """`parent[key]`, which must be a JSON object (`where` prefixes the key in the error)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadDMRequest(f"{where}{key} is missing or not a JSON object", 400)
    return value


def sendable(text: str, what: str) -> str:
    """`text` if the platform can carry it: a lone surrogate (JSON's `\\ud800`) is no
    Unicode text, and no platform would read it as dmgate did."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadDMRequest(f"{what} is not valid Unicode (lone surrogate)", 400) from exc
    return text


# --- times -----------------------------------------------------------------------------


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time from an answer (`2024-05-01T10:00:00.000Z`), UTC when it names no
    zone; None for anything else (learning never raises)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_ms(value: Any) -> datetime | None:
    """Milliseconds since the epoch, a JSON number or a string of them (X's
    `created_timestamp`); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def iso_now() -> str:
    """Now, as Mastodon and Bluesky write times: milliseconds and `Z`."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --- answers on a network's behalf -----------------------------------------------------


def hold_digest(hold_id: str, purpose: str) -> bytes:
    """The seed of a stand-in id in a held message's answer: stable per hold and purpose,
    so a retry of the same hold hears the same ids."""
    return hashlib.sha256(f"dmgate:{purpose}:{hold_id}".encode()).digest()


def synthetic_number(hold_id: str, purpose: str, low: int, span: int, size: int = 8) -> str:
    """A stable decimal stand-in id in `[low, low + span)`, from the first `size` bytes
    of `hold_digest`: shaped like the network's own numeric ids."""
    seed = int.from_bytes(hold_digest(hold_id, purpose)[:size], "big")
    return str(low + seed % span)


# --- learning --------------------------------------------------------------------------


def earliest_inbound(facts: Iterable[InboundMessage]) -> list[InboundMessage]:
    """One fact per (account, sender), with the earliest known time, in the order they
    were first seen: a page of a long conversation should not become a hundred writes
    saying the same thing."""
    best: dict[tuple[str, str], InboundMessage] = {}
    for fact in facts:
        key = (fact.account, fact.sender)
        seen = best.get(key)
        if seen is None or (fact.at is not None and (seen.at is None or fact.at < seen.at)):
            best[key] = fact
    return list(best.values())


def names_in(user: dict[str, Any], keys: Iterable[str]) -> tuple[str, ...]:
    """The non-blank string values of `keys` in a user object: how the user is addressed
    (display name, handle), for a template's `<name>` placeholder."""
    return tuple(n for k in keys if isinstance(n := user.get(k), str) and n.strip())
