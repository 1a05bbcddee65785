"""The review API: list, read, approve and reject holds; report follows. Bearer tokens,
compared in constant time. `/api/openapi.json` documents exactly these routes, and the
limits they enforce come from `proxy/openapi.py`.

Bad input is a 400 `bad_request` whatever is wrong with it (not UTF-8, not JSON, not an
object, nested too deeply, unknown or wrongly typed fields, values out of range); the one
422 is the design's: a reject without a reason. Store outages become 503 in
`proxy.errors.answering_errors`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from proxy.context import CTX
from proxy.errors import (
    BadRequest,
    BearerRequired,
    Conflict,
    DMGateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from proxy.facts import Followed
from proxy.holds import HoldNotPending
from proxy.inbox import actions, views
from proxy.openapi import (
    DEFAULT_PAGE,
    HOLD_ID_PATTERN,
    MAX_BODY,
    MAX_NOTE,
    MAX_PAGE,
    MAX_PLATFORM,
    MAX_REASON,
    MAX_TEXT,
    MAX_USER_ID,
    OPENAPI,
    SPACE,
    TEMPLATE_ID_PATTERN,
)
from proxy.store.database import Row
from proxy.store.holds import STATUSES
from proxy.store.inbox import HoldFilter
from proxy.streams import read_capped

_HOLD_ID = re.compile(HOLD_ID_PATTERN)
_TEMPLATE_ID = re.compile(TEMPLATE_ID_PATTERN)
_EXPORT_BATCH = 1000
# RFC 3339 `date-time` exactly (what the document promises); pydantic alone would also
# take a space for the `T`, or no seconds.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
M = TypeVar("M", bound=BaseModel)
_BLANK = "blank"  # the error type of a required string with nothing but white space
_MAX_PROBLEMS = 5  # listed in one error's detail; the rest are summarised


def _clean(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul", "must not contain NUL characters")
    return value.strip(SPACE)


def _not_blank(value: str) -> str:
    value = _clean(value)
    if not value:
        raise PydanticCustomError(_BLANK, "must not be empty")
    return value


def _rfc3339(value: Any) -> Any:
    # Also refuses numbers, which pydantic would read as Unix times.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError("date_time", "must be an RFC 3339 date-time with a time zone")
    return value


# Lengths are checked on the string as sent (as the document's maxLength is), then white
# space is stripped.
_NotBlank = AfterValidator(_not_blank)
_Clean = AfterValidator(_clean)
_Strict = Field(strict=True)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApproveBody(_Body):
    text: Annotated[str, _Strict, Field(max_length=MAX_TEXT), _NotBlank] | None = None
    note: Annotated[str, _Strict, Field(max_length=MAX_NOTE), _Clean] | None = None


class RejectBody(_Body):
    reason: Annotated[str, _Strict, Field(max_length=MAX_REASON), _NotBlank]
    note: Annotated[str, _Strict, Field(max_length=MAX_NOTE), _Clean] | None = None


class FollowEventBody(_Body):
    platform: Annotated[str, _Strict, Field(max_length=MAX_PLATFORM), _NotBlank]
    account: Annotated[str, _Strict, Field(max_length=MAX_USER_ID), _NotBlank]
    follower: Annotated[str, _Strict, Field(max_length=MAX_USER_ID), _NotBlank]
    followed_at: Annotated[datetime, BeforeValidator(_rfc3339)] | None = None


def hold_view(row: Row) -> dict[str, Any]:
    """The review API's `Hold` (also the body of a hold's announcement): never
    credentials, never the stored request."""
    return {
        "id": row["id"],
        "status": row["status"],
        "platform": row["platform"],
        "route": row["route"],
        "account": row["account"],
        "recipients": row["recipients"],
        "text": row["text"],
        "policies": row["policies"],
        "created_at": _ts(row["created_at"]),
        "expires_at": _ts(row["expires_at"]),
        "decided_at": _ts(row["decided_at"]),
        "decided_by": row["decided_by"],
        "note": row["note"],
        "reason": row["reason"],
        "sent_text": row["sent_text"],
        "upstream_status": row["upstream_status"],
        "upstream_body": row["upstream_body"],
        "template_id": row.get("template_id"),
    }


def announcement(row: Row) -> str:
    """A new hold as the review endpoint hears of it."""
    return json.dumps({"event": "hold.created", "hold": hold_view(row)})


def authenticate(request: web.Request) -> str:
    """The reviewer's token name, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerRequired("the review API needs 'Authorization: Bearer <token>'")
    name = request.app[CTX].reviewers.name_for(token.strip())
    if name is None:
        raise BearerRequired("invalid review token")
    return name


async def _json_body(request: web.Request, model: type[M]) -> M:
    """The body as `model`; no body at all is `{}` (approve needs none; a reject without
    one has no reason)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"review API bodies are limited to {MAX_BODY} bytes", limit=MAX_BODY)
    raw = await read_capped(request.content, MAX_BODY)
    if raw is None:
        raise PayloadTooLarge(f"review API bodies are limited to {MAX_BODY} bytes", limit=MAX_BODY)
    if not raw.strip():
        raw = b"{}"
    elif request.content_type not in ("application/json", "application/octet-stream"):
        # aiohttp reports a missing Content-Type as application/octet-stream.
        raise BadRequest(f"send the body as application/json, not {request.content_type}")
    try:
        # pydantic's own JSON parser: strict UTF-8, no NaN, and a nesting limit (Python's
        # json module raises RecursionError on deep input).
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _refusal(model, exc) from None


def _refusal(model: type[BaseModel], exc: ValidationError) -> DMGateError:
    errors = exc.errors(include_url=False)
    for e in errors:
        if e["type"] == "json_invalid":
            return BadRequest(
                f"the body is not valid JSON: {e['msg'].removeprefix('Invalid JSON: ')}"
            )
    if any(e["type"] == "model_type" and not e["loc"] for e in errors):
        return BadRequest("the body must be a JSON object")
    if model is RejectBody and all(_no_reason(e) for e in errors):
        return Unprocessable("a reason is required to reject a hold")
    problems = [
        f"{'.'.join(str(p)[:64] for p in e['loc']) or 'body'}: {e['msg']}"
        for e in errors[:_MAX_PROBLEMS]
    ]
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_PROBLEMS} more")
    return BadRequest("; ".join(problems))


def _no_reason(error: Any) -> bool:
    """Missing, null or blank: the design's "reject without a reason" (422)."""
    if tuple(error["loc"]) != ("reason",):
        return False
    return error["type"] in ("missing", _BLANK) or (
        error["type"] == "string_type" and error.get("input") is None
    )


def _one(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    return values[0] if values else None


def _hold_id(request: web.Request) -> str:
    """The path's hold id; one that cannot exist is unknown without asking the store."""
    hold_id = request.match_info["id"]
    if not _HOLD_ID.fullmatch(hold_id):
        raise NotFound(f"no hold with id {hold_id[:64]!r}")
    return hold_id


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def _ts(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def _utc(at: datetime) -> datetime:
    """`at` in UTC, as the store keeps it; beyond the years datetime can hold in UTC
    (0001-01-01T00:00+01:00 is still year 0 there), the nearest time it can."""
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return (datetime.min if at.year == 1 else datetime.max).replace(tzinfo=UTC)


async def list_holds(request: web.Request) -> web.Response:
    authenticate(request)
    status = _one(request, "status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    raw_limit = _one(request, "limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        # Digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
        if not (raw_limit.isascii() and raw_limit.isdigit()) or len(raw_limit) > 6:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}")
        limit = int(raw_limit)
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}")
    cursor = _one(request, "cursor")
    if cursor is not None and not _HOLD_ID.fullmatch(cursor):
        raise BadRequest("cursor must be the next_cursor of a previous page")
    template = _one(request, "template")
    if template is not None and not _TEMPLATE_ID.fullmatch(template):
        raise BadRequest("template must be a hold's template_id")
    store = request.app[CTX].store
    where = HoldFilter(status=status, template=template)
    rows = await store.inbox.page(where, limit + 1, cursor, oldest_first=False)
    items = await views.detailed(store, rows[:limit])
    next_cursor = items[-1]["id"] if len(rows) > limit else None
    return _json({"items": items, "next_cursor": next_cursor})


async def get_hold(request: web.Request) -> web.Response:
    authenticate(request)
    hold_id = _hold_id(request)
    ctx = request.app[CTX]
    [view] = await views.detailed(ctx.store, [await ctx.holds.get(hold_id)])
    return _json(view)


async def approve_hold(request: web.Request) -> web.Response:
    who = authenticate(request)
    hold_id = _hold_id(request)
    body = await _json_body(request, ApproveBody)
    ctx = request.app[CTX]
    with _decided():
        row = await actions.approve(ctx.holds, hold_id, who, body.text, body.note)
    [view] = await views.detailed(ctx.store, [row])
    return _json(view)


async def reject_hold(request: web.Request) -> web.Response:
    who = authenticate(request)
    hold_id = _hold_id(request)
    body = await _json_body(request, RejectBody)
    ctx = request.app[CTX]
    with _decided():
        row = await actions.reject(ctx.holds, hold_id, who, body.reason, body.note)
    [view] = await views.detailed(ctx.store, [row])
    return _json(view)


async def reject_template(request: web.Request) -> web.Response:
    """Reject every pending copy of one campaign."""
    who = authenticate(request)
    template_id = request.match_info["id"]
    if not _TEMPLATE_ID.fullmatch(template_id):
        raise NotFound(f"no campaign with id {template_id[:64]!r}")
    body = await _json_body(request, RejectBody)
    ctx = request.app[CTX]
    n = await actions.reject_campaign(
        ctx.holds, ctx.store, template_id, who, body.reason, body.note
    )
    return _json({"rejected": n})


async def export_decisions(request: web.Request) -> web.StreamResponse:
    """Every decided hold since `since` (default: all), one JSON object per line, in
    decision order: the audit export."""
    authenticate(request)
    raw = _one(request, "since")
    since = datetime.min.replace(tzinfo=UTC)
    if raw is not None:
        if not _RFC3339.fullmatch(raw):
            raise BadRequest("since must be an RFC 3339 date-time with a time zone")
        try:
            since = _utc(datetime.fromisoformat(raw.upper().replace("Z", "+00:00")))
        except ValueError:
            raise BadRequest("since must be an RFC 3339 date-time with a time zone") from None
    store = request.app[CTX].store
    rows = await store.inbox.decided_since(since, None, _EXPORT_BATCH)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    while rows:
        lines = "".join(json.dumps(views.decision_record(r)) + "\n" for r in rows)
        await resp.write(lines.encode())
        if len(rows) < _EXPORT_BATCH:
            break
        last = rows[-1]
        rows = await store.inbox.decided_since(last["decided_at"], last["id"], _EXPORT_BATCH)
    await resp.write_eof()
    return resp


@contextmanager
def _decided() -> Iterator[None]:
    """A decision on a hold that is not pending: 409 with the hold as it is now."""
    try:
        yield
    except HoldNotPending as exc:
        raise Conflict(str(exc), hold=hold_view(exc.row)) from None


async def follow_event(request: web.Request) -> web.Response:
    authenticate(request)
    ctx = request.app[CTX]
    body = await _json_body(request, FollowEventBody)
    now = ctx.clock.now()
    at = _utc(body.followed_at) if body.followed_at is not None else now
    await ctx.store.signals.record_facts(
        body.platform, [Followed(body.account, body.follower, at)], now, source="api"
    )
    return _json(
        {
            "platform": body.platform,
            "account": body.account,
            "follower": body.follower,
            "followed_at": _ts(at),
        },
        status=201,
    )


async def openapi(_request: web.Request) -> web.Response:
    return _json(OPENAPI)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _other_methods(allow: tuple[str, ...]) -> Handler:
    """Any other method on a review path: 405 naming the allowed ones (OPTIONS: 204),
    rather than falling through to the proxy's catch-all route and a 404."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={"Allow": ", ".join(allow)})
        raise MethodNotAllowed(f"{request.method} is not allowed here", allow=allow)

    return handler


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("/api/openapi.json", "GET", openapi),
        ("/api/v1/holds", "GET", list_holds),
        ("/api/v1/holds/{id}", "GET", get_hold),
        ("/api/v1/holds/{id}/approve", "POST", approve_hold),
        ("/api/v1/holds/{id}/reject", "POST", reject_hold),
        ("/api/v1/follow-events", "POST", follow_event),
        ("/api/v1/templates/{id}/reject", "POST", reject_template),
        ("/api/v1/decisions", "GET", export_decisions),
    ]
    for path, method, handler in routes:
        resource = app.router.add_resource(path)
        allow = (method, "HEAD") if method == "GET" else (method,)
        for m in allow:
            resource.add_route(m, handler)
        resource.add_route("*", _other_methods((*allow, "OPTIONS")))
