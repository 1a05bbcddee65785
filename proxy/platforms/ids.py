"""Recipient ids spelled one way, whatever way the tool spelled them.

The recipient dmgate judges must be the one the platform delivers to: if `0042` and `42`
reach the same X user but count as two people here, a template sent to "many" people
is never caught, and a follow seen for `42` never matches a DM to `0042`. Each function
returns the platform's own reading of an id, or refuses (`BadDMRequest`, 400) what the
platform might read differently from dmgate (fullwidth digits: Python's `int()` takes them,
the platforms do not). Refusing loses nothing: the tool hears why, nothing is forwarded.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from proxy.platforms.base import BadDMRequest

# `str` patterns match Unicode digits with `\d`; `[0-9]` is ASCII only, on purpose.
_ASCII_DIGITS = re.compile(r"[0-9]+")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")
_DID = re.compile(r"([dD][iI][dD]):([A-Za-z0-9]+):([A-Za-z0-9._:%-]+)")


def canonical_number(value: Any, what: str, max_digits: int | None = None) -> str:
    """A numeric id (X user id, Meta PSID/page id, Mastodon account id) as the platform
    resolves it: `" 0042 "`, `"42"` and the JSON number `42` are all `"42"`. Floats,
    booleans, negative numbers, signs and non-ASCII digits are refused; so are ids longer
    than `max_digits` once leading zeros are gone (the platform refuses those too)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadDMRequest(f"{what} must be a numeric id (string of digits), got {value!r}", 400)
    if isinstance(value, int):
        if value < 0:
            raise BadDMRequest(f"{what} must not be negative, got {value!r}", 400)
        digits = str(value)
    else:
        digits = value.strip()
        if not digits:
            raise BadDMRequest(f"{what} must be a non-empty string of digits", 400)
        if not _ASCII_DIGITS.fullmatch(digits):
            raise BadDMRequest(f"{what} must be ASCII digits only (0-9), got {value!r}", 400)
        digits = digits.lstrip("0") or "0"
    if max_digits is not None and len(digits) > max_digits:
        raise BadDMRequest(f"{what} has more than {max_digits} digits: {value!r}", 400)
    return digits


def number_or_none(value: Any, max_digits: int | None = None) -> str | None:
    """`canonical_number`, or None where an answer is being read (learning never raises)."""
    try:
        return canonical_number(value, "id", max_digits)
    except BadDMRequest:
        return None


def canonical_pair(value: str, what: str, max_digits: int | None = None) -> tuple[str, str]:
    """An `A-B` id of two numeric ids (X's 1:1 conversations), each side canonical and the
    smaller first, as X spells it: `0042-7` and `7-42` are both `("7", "42")`."""
    left, sep, right = value.strip().partition("-")
    if not sep:
        raise BadDMRequest(f"{what} must be '{{id}}-{{id}}', got {value!r}", 400)
    a = canonical_number(left, what, max_digits)
    b = canonical_number(right, what, max_digits)
    lo, hi = sorted((a, b), key=int)
    return lo, hi


def canonical_phone(value: str, what: str) -> str:
    """A phone number as digits with an optional leading `+`: `+1 (212) 555-2368` and
    `+12125552368` are one person."""
    compact = _PHONE_PUNCTUATION.sub("", value)
    plus, digits = ("+", compact[1:]) if compact.startswith("+") else ("", compact)
    if not _ASCII_DIGITS.fullmatch(digits):
        raise BadDMRequest(f"{what} must be a phone number in ASCII digits, got {value!r}", 400)
    return plus + digits


def canonical_domain(domain: str) -> str:
    """A host name as Mastodon stores it (`TagManager#normalize_domain`: IDNA ASCII form,
    lower case): `Example.COM` → `example.com`, `münchen.social` → `xn--mnchen-3ya.social`."""
    domain = domain.strip().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:  # not a valid IDN: the case-folded text still names it one way
        return domain.casefold()


def percent_decoded(value: str, rounds: int = 3) -> str:
    """`value` with percent-encoding undone (a URN sent as `urn%3Ali%3Aperson%3Aabc`, or
    encoded twice). Stops once nothing changes."""
    for _ in range(rounds):
        if "%" not in value:
            break
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def canonical_did(value: Any) -> str | None:
    """A DID with its scheme and method in lower case (`DID:PLC:abc` → `did:plc:abc`);
    the method-specific id is kept as sent (`did:plc` ids are case-sensitive). None if
    `value` is no DID."""
    if not isinstance(value, str):
        return None
    m = _DID.fullmatch(value.strip())
    if m is None:
        return None
    return f"did:{m.group(2).lower()}:{m.group(3)}"
