"""Review inbox sign-in: a review token exchanged for a session cookie.

The cookie is self-contained and signed with a key derived from DMGATE_SECRET_KEY (so
every replica sharing the key accepts it): the reviewer's name, when it expires, the CSRF
token of the session, and a fingerprint of the review token used, so removing a token
ends its sessions. Signing out ends the session on the server too: the store keeps the
digest of the session's id until it would have expired (`review_signouts`), so a copy of
the cookie is refused everywhere. HttpOnly, SameSite=Strict, Path=/review, Secure when
dmgate is reached over TLS (the request's scheme or DMGATE_PUBLIC_URL), and a Max-Age of
the session's lifetime (DMGATE_REVIEW_SESSION_TTL).

CSRF: every state change carries the session's CSRF token in a form field (`csrf`) or the
`X-CSRF-Token` header, compared in constant time; the sign-in form itself carries one from
a short-lived pre-session cookie (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from proxy.context import CTX
from proxy.crypto import Keyring

COOKIE = "dmgate_review"
PRE_COOKIE = "dmgate_review_signin"
PATH = "/review"
_PRE_TTL = 3600


@dataclass(frozen=True)
class Session:
    name: str  # the review token's name: `decided_by`
    csrf: str
    expires: int


def _sign(keyring: Keyring, payload: str) -> str:
    return keyring.credential_hash("dmgate-review-session\0" + payload)


def _encode(keyring: Keyring, doc: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    return f"{payload}.{_sign(keyring, payload)}"


def _decode(keyring: Keyring, value: str | None) -> dict[str, object] | None:
    if not value or "." not in value or len(value) > 4096:
        return None
    payload, _, sig = value.rpartition(".")
    if not hmac.compare_digest(sig, _sign(keyring, payload)):
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("exp"), int):
        return None
    if doc["exp"] <= time.time():
        return None
    return doc


def secure(request: web.Request) -> bool:
    public = request.config_dict[CTX].settings.public_url
    return request.secure or bool(public and public.lower().startswith("https://"))


def _set(resp: web.StreamResponse, request: web.Request, name: str, value: str, age: int) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=age,
        path=PATH,
        httponly=True,
        samesite="Strict",
        secure=secure(request),
    )


async def current(request: web.Request) -> Session | None:
    """The signed-in reviewer, if the cookie is valid, unexpired, its token still
    configured and the session not signed out."""
    ctx = request.config_dict[CTX]
    doc = _decode(ctx.keyring, request.cookies.get(COOKIE))
    if doc is None or not all(isinstance(doc.get(k), str) for k in ("n", "c", "t")):
        return None
    fingerprints = {digest[:16] for digest in ctx.reviewers.digests(str(doc["n"]))}
    if doc["t"] not in fingerprints:
        return None
    session = Session(str(doc["n"]), str(doc["c"]), int(str(doc["exp"])))
    if await ctx.store.signouts.signed_out(_session_digest(session)):
        return None
    return session


def _session_digest(session: Session) -> str:
    # The session's CSRF token is its id: random per session, and only its digest is kept.
    return hashlib.sha256(b"dmgate-review-signout\0" + session.csrf.encode()).hexdigest()


def start(request: web.Request, resp: web.StreamResponse, name: str, digest: str) -> None:
    ttl = int(request.config_dict[CTX].settings.review_session_ttl.total_seconds())
    doc = {
        "n": name,
        "c": secrets.token_urlsafe(24),
        "t": digest[:16],
        "exp": int(time.time()) + ttl,
    }
    _set(resp, request, COOKIE, _encode(request.config_dict[CTX].keyring, doc), ttl)
    resp.del_cookie(PRE_COOKIE, path=PATH)


async def end(request: web.Request, resp: web.StreamResponse, session: Session) -> None:
    """Sign out: the session is refused from now on wherever its cookie comes from, and
    the browser is asked to forget it."""
    ctx = request.config_dict[CTX]
    await ctx.store.signouts.add(_session_digest(session), session.expires, time.time())
    resp.del_cookie(COOKIE, path=PATH)


def signin_csrf(request: web.Request) -> tuple[str, str | None]:
    """The sign-in form's CSRF token, and the pre-session cookie to set (None when the
    request's own is still valid): `set_signin_cookie` sets it."""
    ctx = request.config_dict[CTX]
    doc = _decode(ctx.keyring, request.cookies.get(PRE_COOKIE))
    if doc is not None and isinstance(doc.get("c"), str):
        return str(doc["c"]), None
    token = secrets.token_urlsafe(24)
    return token, _encode(ctx.keyring, {"c": token, "exp": int(time.time()) + _PRE_TTL})


def set_signin_cookie(request: web.Request, resp: web.StreamResponse, value: str | None) -> None:
    if value is not None:
        _set(resp, request, PRE_COOKIE, value, _PRE_TTL)


def signin_csrf_ok(request: web.Request, sent: str | None) -> bool:
    doc = _decode(request.config_dict[CTX].keyring, request.cookies.get(PRE_COOKIE))
    expected = doc.get("c") if doc else None
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


def csrf_ok(session: Session, sent: str | None) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), session.csrf.encode())
