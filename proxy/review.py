"""The review API: list, read, approve and reject holds; report follows. Bearer tokens,
compared in constant time. `/api/openapi.json` documents exactly these routes."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proxy import holds
from proxy.context import CTX
from proxy.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from proxy.openapi import OPENAPI
from proxy.platforms.base import Followed
from proxy.store.holds import STATUSES


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ApproveBody(_Body):
    text: str | None = Field(None, min_length=1, max_length=10000)
    note: str | None = Field(None, max_length=2000)


class RejectBody(_Body):
    reason: str = Field(min_length=1, max_length=2000)
    note: str | None = Field(None, max_length=2000)


class FollowEventBody(_Body):
    platform: str = Field(min_length=1, max_length=32)
    account: str = Field(min_length=1, max_length=128)
    follower: str = Field(min_length=1, max_length=128)
    followed_at: datetime | None = None

    @field_validator("followed_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("followed_at needs a timezone (e.g. 2026-01-31T12:00:00Z)")
        return v


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(request: web.Request) -> str:
    """The reviewer's token name, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the review API needs 'Authorization: Bearer <token>'")
    digest = token_digest(token.strip())
    name = None
    # Compare against every token, always, so timing says nothing about which matched.
    for candidate, expected in request.app[CTX].review_tokens:
        if hmac.compare_digest(digest, expected):
            name = candidate
    if name is None:
        raise Unauthorized("invalid review token")
    return name


async def _json_body(request: web.Request, model: type[BaseModel], optional: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip() and optional:
        raw = b"{}"
    ctype = request.content_type
    if raw.strip() and ctype not in ("application/json", "application/octet-stream", ""):
        raise BadRequest(f"send the body as application/json, not {ctype}")
    try:
        data = json.loads(raw or b"null")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise Unprocessable(problems) from None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


async def list_holds(request: web.Request) -> web.Response:
    authenticate(request)
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= 500:
        raise BadRequest("limit must be between 1 and 500")
    cursor = request.query.get("cursor") or None
    rows = await request.app[CTX].store.holds.list(status, limit + 1, cursor)
    items = [holds.hold_view(r) for r in rows[:limit]]
    next_cursor = items[-1]["id"] if len(rows) > limit else None
    return _json({"items": items, "next_cursor": next_cursor})


async def get_hold(request: web.Request) -> web.Response:
    authenticate(request)
    row = await request.app[CTX].store.holds.get(request.match_info["id"])
    if row is None:
        raise NotFound(f"no hold with id {request.match_info['id']!r}")
    return _json(holds.hold_view(row))


async def approve_hold(request: web.Request) -> web.Response:
    who = authenticate(request)
    body = await _json_body(request, ApproveBody, optional=True)
    return _json(
        await holds.approve(request.app[CTX], request.match_info["id"], who, body.text, body.note)
    )


async def reject_hold(request: web.Request) -> web.Response:
    who = authenticate(request)
    body = await _json_body(request, RejectBody)
    return _json(
        await holds.reject(request.app[CTX], request.match_info["id"], who, body.reason, body.note)
    )


async def follow_event(request: web.Request) -> web.Response:
    authenticate(request)
    ctx = request.app[CTX]
    body = await _json_body(request, FollowEventBody)
    now = datetime.now(UTC)
    at = body.followed_at or now
    await ctx.store.signals.record_facts(
        body.platform, [Followed(body.account, body.follower, at)], now, source="api"
    )
    return _json(
        {
            "platform": body.platform,
            "account": body.account,
            "follower": body.follower,
            "followed_at": at.isoformat(),
        },
        status=201,
    )


async def openapi(_request: web.Request) -> web.Response:
    return _json(OPENAPI)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/v1/holds", list_holds)
    app.router.add_get("/api/v1/holds/{id}", get_hold)
    app.router.add_post("/api/v1/holds/{id}/approve", approve_hold)
    app.router.add_post("/api/v1/holds/{id}/reject", reject_hold)
    app.router.add_post("/api/v1/follow-events", follow_event)
