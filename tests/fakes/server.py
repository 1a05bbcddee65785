"""Serving a fake upstream from synchronous tests: its own event loop in a daemon thread.

with FakeXThread() as x:          # a FakeAppThread around FakeX().app()
    httpx.get(x.url + "/2/users/me", ...)
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer


@dataclass(frozen=True)
class Recorded:
    """One request as a fake received it."""

    method: str
    path: str  # percent-decoded, without the query
    raw_path: str  # path and query exactly as sent
    query_string: str  # raw, undecoded
    headers: list[tuple[str, str]]  # in order, repeats kept, bytes decoded as latin-1
    body: bytes  # b"" where the fake streams the body instead of keeping it

    @classmethod
    def of(cls, request: web.Request, body: bytes) -> Recorded:
        raw_path = request.raw_path
        return cls(
            method=request.method,
            path=request.path,
            raw_path=raw_path,
            query_string=raw_path.partition("?")[2],
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=body,
        )

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


class FakeAppThread:
    """Any fake's `app()` served on its own event loop in a daemon thread.

    With `ssl_context` (a server-side context, see tests/fakes/tls.py) it serves HTTPS.
    """

    def __init__(
        self,
        state: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> FakeAppThread:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._runner = web.AppRunner(self.state.app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start within 10 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or thread is None:
            return
        if runner is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> FakeAppThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def ask(app: web.Application, view: Any) -> tuple[int, bytes]:
    """Send an adapter's `RequestView` (a `whoami` view) to a fake's `app()` in this event
    loop, exactly as the view says (method, path, query, headers); the status and body."""
    async with TestClient(TestServer(app)) as client:
        resp = await client.request(
            view.method,
            view.path,
            params=list(view.query.items()),
            headers=list(view.headers.items()),
        )
        return resp.status, await resp.read()
