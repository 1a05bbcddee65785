"""A fake Mastodon instance for end-to-end tests.

Shapes follow mastodon/documentation (`content/en/methods/statuses.md`,
`notifications.md`, `accounts.md`, `content/en/entities/*.md`). Status posts are parsed
the way Rails does (form data — also without a Content-Type, as Rack does —, multipart
and JSON; query parameters override body parameters), validated like Mastodon
(`status` required without media, `visibility` from the four values), and honour
`Idempotency-Key`. `PUT`/`PATCH /api/v1/statuses/:id` edit a status of the caller's
(`UpdateStatusService`: text, spoiler and poll change, the visibility does not; 200 with
the Status and `edited_at`), `GET /api/v1/statuses/:id` reads one (404 for a direct
status the caller is neither the author nor mentioned in, as Mastodon hides it). Errors are
Mastodon's `{"error": "..."}`.

    with FakeMastodonThread() as m:
        alice = m.state.add_account("1", "alice", token="t")
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import FakeAppThread, Recorded

VISIBILITIES = ("public", "unlisted", "private", "direct")
_MENTION = re.compile(
    r"(?<![/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@([\w.-]+\w))?", re.IGNORECASE
)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class Posted:
    """A status the fake accepted."""

    id: str
    account_id: str
    text: str
    visibility: str
    mentions: tuple[str, ...]  # accts as the fake resolved them
    created_at: datetime
    idempotency_key: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    edited_at: datetime | None = None


class FakeMastodon:
    def __init__(self, domain: str = "fake.social") -> None:
        self.domain = domain
        self.requests: list[Recorded] = []
        self.accounts: dict[str, dict[str, Any]] = {}  # id -> Account entity
        self.tokens: dict[str, str] = {}  # bearer token -> account id
        self.statuses: list[Posted] = []
        self.edits: list[Posted] = []  # each accepted edit, as the status read after it
        self.notifications: dict[str, list[dict[str, Any]]] = {}  # account id -> newest first
        self.followers: dict[str, list[str]] = {}  # account id -> follower ids, newest first
        self.reject_tokens: set[str] = set()
        self._next = 110_000_000_000_000_000

    # --- helpers for tests -------------------------------------------------------------

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_account(
        self, account_id: str, username: str, domain: str | None = None, token: str | None = None
    ) -> dict[str, Any]:
        acct = username if domain in (None, self.domain) else f"{username}@{domain}"
        account = {
            "id": account_id,
            "username": username,
            "acct": acct,
            "display_name": username.capitalize(),
            "locked": False,
            "bot": False,
            "created_at": "2024-01-01T00:00:00.000Z",
            "note": "",
            "url": f"https://{domain or self.domain}/@{username}",
            "avatar": "",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": 0,
        }
        self.accounts[account_id] = account
        if token is not None:
            self.tokens[token] = account_id
        return account

    def by_acct(self, acct: str) -> dict[str, Any] | None:
        acct = acct.lower()
        if acct.endswith("@" + self.domain):
            acct = acct[: -len(self.domain) - 1]
        return next((a for a in self.accounts.values() if a["acct"].lower() == acct), None)

    def notify_follow(self, account_id: str, follower_id: str, at: datetime | None = None) -> None:
        self.followers.setdefault(account_id, []).insert(0, follower_id)
        self._notify(account_id, "follow", follower_id, at)

    def notify_direct(
        self, account_id: str, sender_id: str, text: str, at: datetime | None = None
    ) -> None:
        at = at or datetime.now(UTC)
        me = self.accounts[account_id]
        status = self._status(
            Posted(self.new_id(), sender_id, f"@{me['acct']} {text}", "direct", (me["acct"],), at)
        )
        self._notify(account_id, "mention", sender_id, at, status)

    def _notify(
        self,
        account_id: str,
        kind: str,
        from_id: str,
        at: datetime | None,
        status: dict[str, Any] | None = None,
    ) -> None:
        n: dict[str, Any] = {
            "id": self.new_id(),
            "type": kind,
            "created_at": _iso(at or datetime.now(UTC)),
            "account": self.accounts[from_id],
        }
        if status is not None:
            n["status"] = status
        self.notifications.setdefault(account_id, []).insert(0, n)

    def _status(self, p: Posted) -> dict[str, Any]:
        mentions = []
        for acct in p.mentions:
            a = self.by_acct(acct)
            if a is not None:
                mentions.append(
                    {"id": a["id"], "username": a["username"], "acct": a["acct"], "url": a["url"]}
                )
        return {
            "id": p.id,
            "created_at": _iso(p.created_at),
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": p.visibility,
            "language": "en",
            "uri": f"https://{self.domain}/users/x/statuses/{p.id}",
            "url": f"https://{self.domain}/@x/{p.id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": _iso(p.edited_at) if p.edited_at else None,
            "content": f"<p>{p.text}</p>",
            "reblog": None,
            "application": {"name": "fake", "website": None},
            "account": self.accounts.get(p.account_id, {"id": p.account_id}),
            "media_attachments": [],
            "mentions": mentions,
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    # --- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/api/v1/statuses", self._post_status)
        r.add_get("/api/v1/statuses/{id}", self._get_status)
        r.add_put("/api/v1/statuses/{id}", self._edit_status)
        r.add_patch("/api/v1/statuses/{id}", self._edit_status)
        r.add_get("/api/v1/accounts/verify_credentials", self._verify_credentials)
        r.add_get("/api/v1/notifications", self._notifications)
        r.add_get("/api/v1/accounts/{id}/followers", self._followers)
        r.add_route("*", "/_test/echo{tail:.*}", self._echo)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded.of(request, body))
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, "Record not found")

    def _caller(self, request: web.Request) -> str | web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        # Doorkeeper also takes the token as the `access_token` parameter.
        token = token or request.query.get("access_token", "")
        if token not in self.tokens or token in self.reject_tokens:
            return _error(401, "The access token is invalid")
        return self.tokens[token]

    async def _params(self, request: web.Request) -> dict[str, Any] | web.Response:
        """Rails' `params`: the body (form, multipart or JSON) with the query over it."""
        params: dict[str, Any] = {}
        media_type = request.content_type if "Content-Type" in request.headers else None
        if media_type == "application/json":
            try:
                doc = json.loads(await request.read())
            except ValueError:
                return _error(400, "Error occurred while parsing request parameters")
            if not isinstance(doc, dict):
                return _error(400, "Error occurred while parsing request parameters")
            params.update(doc)
        elif media_type in (None, "application/x-www-form-urlencoded", "multipart/form-data"):
            if media_type is None:
                form = parse_qsl((await request.read()).decode(), keep_blank_values=True)
                items: list[tuple[str, Any]] = form
            elif media_type == "multipart/form-data":
                items = _multipart(request.headers["Content-Type"], await request.read())
            else:
                items = list((await request.post()).items())
            for key, value in items:
                if key.endswith("[]"):
                    params.setdefault(key[:-2], []).append(value)
                else:
                    params[key] = value
        for key, value in request.query.items():
            params[key] = value
        return params

    async def _post_status(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        params = await self._params(request)
        if isinstance(params, web.Response):
            return params
        text = params.get("status") or ""
        if not isinstance(text, str):
            return _error(422, "Validation failed: Text must be a string")
        if not text.strip() and not params.get("media_ids"):
            return _error(422, "Validation failed: Text can't be blank")
        visibility = params.get("visibility") or "public"
        if visibility not in VISIBILITIES:
            return _error(422, f"Validation failed: Visibility '{visibility}' is not valid")
        key = request.headers.get("Idempotency-Key")
        if key:
            for earlier in self.statuses:
                if earlier.idempotency_key == key and earlier.account_id == caller:
                    return web.json_response(self._status(earlier))
        posted = Posted(
            self.new_id(),
            caller,
            text,
            visibility,
            self._mentions(text),
            datetime.now(UTC),
            key,
            params,
        )
        self.statuses.append(posted)
        return web.json_response(self._status(posted))

    def _mentions(self, text: str) -> tuple[str, ...]:
        found = []
        for m in _MENTION.finditer(text):
            acct = f"{m.group(1)}@{m.group(2)}" if m.group(2) else m.group(1)
            account = self.by_acct(acct)
            if account is not None:
                found.append(account["acct"])
        return tuple(dict.fromkeys(found))

    def _find(self, request: web.Request, caller: str) -> Posted | None:
        """A status the caller may see (a direct one: its author or a mentioned account)."""
        status = next((p for p in self.statuses if p.id == request.match_info["id"]), None)
        if status is None or status.visibility != "direct" or status.account_id == caller:
            return status
        me = self.accounts[caller]["acct"]
        return status if me in status.mentions else None

    async def _get_status(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        status = self._find(request, caller)
        if status is None:
            return _error(404, "Record not found")
        return web.json_response(self._status(status))

    async def _edit_status(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        status = self._find(request, caller)
        if status is None or status.account_id != caller:
            return _error(404, "Record not found")
        params = await self._params(request)
        if isinstance(params, web.Response):
            return params
        text = params.get("status") or ""
        if not isinstance(text, str) or (not text.strip() and not params.get("media_ids")):
            return _error(422, "Validation failed: Text can't be blank")
        status.text = text
        status.mentions = tuple(dict.fromkeys(status.mentions + self._mentions(text)))
        status.params = params
        status.edited_at = datetime.now(UTC)
        self.edits.append(Posted(**{**status.__dict__, "params": dict(params)}))
        return web.json_response(self._status(status))

    async def _verify_credentials(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        account = dict(self.accounts[caller])
        account["source"] = {"privacy": "public", "sensitive": False, "note": ""}
        return web.json_response(account)

    def _page(
        self, request: web.Request, items: list[Any], key: Any
    ) -> tuple[list[Any], dict[str, str]]:
        """Newest-first paging by `max_id` with a `Link` header, like Mastodon's."""
        limit = int(request.query.get("limit", "40"))
        max_id = request.query.get("max_id")
        if max_id is not None:
            items = [i for i in items if int(key(i)) < int(max_id)]
        page = items[:limit]
        headers = {}
        if len(items) > limit:
            url = request.url.with_query({"limit": str(limit), "max_id": key(page[-1])})
            headers["Link"] = f'<{url}>; rel="next"'
        return page, headers

    async def _notifications(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        page, headers = self._page(request, self.notifications.get(caller, []), lambda n: n["id"])
        return web.json_response(page, headers=headers)

    async def _followers(self, request: web.Request) -> web.Response:
        account_id = request.match_info["id"]
        if account_id not in self.accounts:
            return _error(404, "Record not found")
        ids = self.followers.get(account_id, [])
        # Mastodon pages followers by the Follow record's id; the fake uses the position.
        rows = [(str(10_000 - i), self.accounts[f]) for i, f in enumerate(ids)]
        page, headers = self._page(request, rows, lambda row: row[0])
        return web.json_response([a for _, a in page], headers=headers)

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "path": request.path})


def _multipart(content_type: str, body: bytes) -> list[tuple[str, Any]]:
    """Form fields of a multipart body (the middleware has read the stream already)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: list[tuple[str, Any]] = []
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if name is not None and part.get_filename() is None:
            fields.append((name, part.get_payload(decode=True).decode("utf-8")))
    return fields


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class FakeMastodonThread(FakeAppThread):
    """The fake on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, state: FakeMastodon | None = None
    ) -> None:
        super().__init__(state or FakeMastodon(), host, port)
        self.state: FakeMastodon
