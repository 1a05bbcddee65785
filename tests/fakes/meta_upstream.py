"""A fake Graph API upstream (Messenger Send API, Instagram messaging) for end-to-end tests.

Like Graph, it takes parameters from the query string, a JSON body, a form body or a
multipart body, with `recipient` and `message` as JSON strings outside JSON bodies; the
access token comes from `access_token` (any of those) or `Authorization: Bearer`. Errors
use Graph's shape (`{"error": {"message", "type", "code", "fbtrace_id"}}`).

    with FakeMetaThread() as meta:
        meta.state.add_page("123", token="page-token")
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import FakeAppThread, Recorded

_RECIPIENT_KEYS = ("id", "user_ref", "comment_id", "post_id", "notification_messages_token")


@dataclass
class SentMessage:
    page: str
    recipient: dict[str, Any]
    message: dict[str, Any]
    messaging_type: str | None
    form: str  # json | form | query | multipart


class FakeMeta:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.pages_by_token: dict[str, dict[str, str]] = {}
        self.sent: list[SentMessage] = []
        self.actions: list[tuple[str, str]] = []  # (page, sender_action)
        self._ids = itertools.count(1)

    def add_page(self, page_id: str, token: str, name: str = "Rocketly") -> None:
        self.pages_by_token[token] = {"id": page_id, "name": name}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        for prefix in ("", "/{version:v[0-9.]+}"):
            app.router.add_post(prefix + "/{owner}/messages", self._send)
            app.router.add_get(prefix + "/me", self._me)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Multipart bodies are left to `request.post()` (which reads the stream itself).
        multipart = request.content_type == "multipart/form-data"
        body = b"" if multipart else await request.read()
        self.requests.append(Recorded.of(request, body))
        return await handler(request)

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], str]:
        params: dict[str, Any] = dict(request.query)
        form = "query"
        multipart = request.content_type == "multipart/form-data"
        body = b"" if multipart else await request.read()
        if request.content_type == "application/json" and body:
            params.update(json.loads(body))
            form = "json"
        elif request.content_type == "application/x-www-form-urlencoded" and body:
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
            form = "form"
        elif multipart:
            data = await request.post()
            params.update({k: v for k, v in data.items() if isinstance(v, str)})
            form = "multipart"
        return params, form

    def _page(self, request: web.Request, params: dict[str, Any]) -> dict[str, str] | None:
        token = params.get("access_token")
        if not token:
            scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
            token = rest.strip() if scheme.lower() == "bearer" else None
        return self.pages_by_token.get(token or "")

    async def _me(self, request: web.Request) -> web.Response:
        params, _ = await self._params(request)
        page = self._page(request, params)
        if page is None:
            return _error(400, 190, "Invalid OAuth access token.")
        return web.json_response(page)

    async def _send(self, request: web.Request) -> web.Response:
        try:
            params, form = await self._params(request)
        except ValueError:
            return _error(400, 100, "Invalid JSON body")
        page = self._page(request, params)
        if page is None:
            return _error(400, 190, "Invalid OAuth access token.")
        owner = request.match_info["owner"]
        if owner not in ("me", page["id"]):
            return _error(400, 100, "(#100) The page does not match the access token")
        try:
            recipient = _json(params.get("recipient"))
            action = params.get("sender_action")
            message = None if action else _json(params.get("message"))
        except ValueError as exc:
            return _error(400, 100, f"(#100) {exc}")
        if not isinstance(recipient, dict) or not any(k in recipient for k in _RECIPIENT_KEYS):
            return _error(400, 100, "(#100) The parameter recipient is required")
        if action:
            self.actions.append((page["id"], action))
            return web.json_response({"recipient_id": recipient.get("id")})
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return _error(400, 100, "(#100) The parameter message is required")
        self.sent.append(
            SentMessage(page["id"], recipient, message, params.get("messaging_type"), form)
        )
        answer: dict[str, Any] = {"message_id": f"m_fake{next(self._ids)}"}
        if "id" in recipient:
            answer = {"recipient_id": recipient["id"], **answer}
        return web.json_response(answer)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


def _error(status: int, code: int, message: str) -> web.Response:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Fake"}
    return web.json_response({"error": error}, status=status)


class FakeMetaThread(FakeAppThread):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(FakeMeta(), host)
        self.state: FakeMeta
