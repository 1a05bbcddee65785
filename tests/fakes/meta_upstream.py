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
from urllib.parse import parse_qsl, urlsplit

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
            app.router.add_post(prefix or "/", self._batch)
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
        status, body = self._deliver(page, request.match_info["owner"], params, form)
        return web.json_response(body, status=status)

    def _deliver(
        self, page: dict[str, str], owner: str, params: dict[str, Any], form: str
    ) -> tuple[int, dict[str, Any]]:
        """One Send API call as the page: (status, answer)."""
        if owner not in ("me", page["id"]):
            return 400, _error_body(100, "(#100) The page does not match the access token")
        try:
            recipient = _json(params.get("recipient"))
            action = params.get("sender_action")
            message = None if action else _json(params.get("message"))
        except ValueError as exc:
            return 400, _error_body(100, f"(#100) {exc}")
        if not isinstance(recipient, dict) or not any(k in recipient for k in _RECIPIENT_KEYS):
            return 400, _error_body(100, "(#100) The parameter recipient is required")
        if action:
            self.actions.append((page["id"], action))
            return 200, {"recipient_id": recipient.get("id")}
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return 400, _error_body(100, "(#100) The parameter message is required")
        self.sent.append(
            SentMessage(page["id"], recipient, message, params.get("messaging_type"), form)
        )
        answer: dict[str, Any] = {"message_id": f"m_fake{next(self._ids)}"}
        if "id" in recipient:
            answer = {"recipient_id": recipient["id"], **answer}
        return 200, answer

    async def _batch(self, request: web.Request) -> web.Response:
        """Graph batch requests (developers.facebook.com/docs/graph-api/batch-requests):
        `batch` is a JSON array of `{method, relative_url, body}` (body URL-encoded); the
        answer is one `{code, headers, body}` per item, `body` a JSON string. Only sends
        are run by this fake; other items answer 400."""
        params, _ = await self._params(request)
        page = self._page(request, params)
        if page is None:
            return _error(400, 190, "Invalid OAuth access token.")
        try:
            items = json.loads(params.get("batch", ""))
        except ValueError:
            return _error(400, 100, "(#100) batch must be a JSON array")
        answers = []
        for item in items:
            url = urlsplit(str(item.get("relative_url", "")))
            parts = [p for p in url.path.split("/") if p]
            if parts and parts[0].startswith("v"):
                parts = parts[1:]
            call = {**dict(parse_qsl(url.query)), **dict(parse_qsl(item.get("body", "")))}
            if len(parts) == 2 and parts[1] == "messages" and item.get("method") == "POST":
                status, body = self._deliver(page, parts[0], call, "batch")
            else:
                status, body = 400, _error_body(100, "(#100) not supported by the fake")
            headers = [{"name": "Content-Type", "value": "application/json; charset=UTF-8"}]
            answers.append({"code": status, "headers": headers, "body": json.dumps(body)})
        return web.json_response(answers)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


def _error_body(code: int, message: str) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Fake"}
    return {"error": error}


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(_error_body(code, message), status=status)


class FakeMetaThread(FakeAppThread):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(FakeMeta(), host)
        self.state: FakeMeta
