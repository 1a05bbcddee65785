"""The path of one proxied request: route → classify → pass through, learn, or judge.

The gateway translates HTTP in and out. What a DM's fate is, the decision pipeline
(`proxy/pipeline.py`) decides; what a signal teaches, the adapter says and the store keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from proxy.clock import Clock
from proxy.crypto import StoredRequest
from proxy.edits import SentMessages
from proxy.errors import (
    BadRequest,
    DMGateError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from proxy.identity import SenderIdentities
from proxy.metrics import Metrics
from proxy.pipeline import Blocked, DecisionPipeline, Held, Replay, Submission, Unjudged
from proxy.platforms.base import (
    BadDMRequest,
    Classified,
    Kind,
    NotADirectMessage,
    Platform,
    PlatformResponse,
    RefusedRequest,
    RequestView,
)
from proxy.refusals import (
    MethodOverride,
    body_has_override,
    check_request_head,
    decoded_body,
    form_kind,
)
from proxy.relay import (
    Relay,
    WholeRelayedResponse,
    relay_response,
    request_headers_for_upstream,
    response_headers_for_client,
    upstream_errors,
)
from proxy.routing import Target, resolve
from proxy.settings import Settings
from proxy.store import StoreError
from proxy.store.database import Row
from proxy.store.signals import StoreSignals
from proxy.streams import read_capped
from proxy.unanswered import Answer, UnansweredSends

log = structlog.get_logger("dmgate")

DECISION_HEADER = "DMGate-Decision"
HOLD_ID_HEADER = "DMGate-Hold-Id"
# Signal answers larger than this are passed through without being learnt from.
MAX_SIGNAL_BODY = 8 * 1024 * 1024
# ...and so are those that decompress to more than this.
MAX_SIGNAL_DECODED = 8 * MAX_SIGNAL_BODY


def as_http(answer: PlatformResponse, headers: dict[str, str] | None = None) -> web.Response:
    """An adapter's answer as an HTTP response (its content type may carry parameters)."""
    return web.Response(
        status=answer.status,
        body=answer.body_bytes(),
        headers={"Content-Type": answer.content_type, **answer.headers, **(headers or {})},
    )


class Gateway:
    def __init__(
        self,
        settings: Settings,
        platforms: Mapping[str, Platform],
        relay: Relay,
        pipeline: DecisionPipeline,
        identities: SenderIdentities,
        signals: StoreSignals,
        unanswered: UnansweredSends,
        metrics: Metrics,
        clock: Clock,
        sent: SentMessages | None = None,
    ) -> None:
        self._settings = settings
        self._sent = sent
        self._platforms = platforms
        self._relay = relay
        self._pipeline = pipeline
        self._identities = identities
        self._signals = signals
        self._unanswered = unanswered
        self._metrics = metrics
        self._clock = clock
        self._counters: dict[tuple[str, Kind], Any] = {}

    def _count(self, route: str, kind: Kind) -> None:
        """dmgate_requests_total, its children kept: prometheus_client's labels() takes a
        lock and builds a key on every call, and every request is counted."""
        child = self._counters.get((route, kind))
        if child is None:
            child = self._counters[route, kind] = self._metrics.requests.labels(route, kind.value)
        child.inc()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = resolve(request, self._settings)
        refused = check_request_head(request.method, request.headers, request.query_string)
        if refused is not None:
            self._metrics.refused_requests.labels(target.route_name, refused[0]).inc()
            raise (MethodOverride if refused[0] == "method_override" else BadRequest)(refused[1])
        platform = self._platforms.get(target.route.platform)
        if platform is None:  # a route that is never judged: nothing to classify
            self._count(target.route_name, Kind.PASSTHROUGH)
            return await self._relay.stream(request, target.route_name, target.url, target.host)
        view = RequestView(
            request.method, target.path, request.query, request.headers, request.query_string
        )
        try:
            call = platform.classify(view)
        except RefusedRequest as exc:
            self._metrics.refused_requests.labels(target.route_name, "dm_path_method").inc()
            raise MethodNotAllowed(f"{platform.name}: {exc}") from None
        kind = call.kind
        if kind is Kind.DM:  # counted once its body has been read (it may be no DM)
            return await self._dm(request, target, platform, call)
        self._count(target.route_name, kind)
        if kind is Kind.SIGNAL:
            return await self._signal(request, target, platform, call)
        return await self._relay.stream(request, target.route_name, target.url, target.host)

    def public_url(self, request: web.Request, target: Target) -> str:
        """Where clients reach this route: in forward mode the host they called (they
        reach it through dmgate anyway); else DMGATE_PUBLIC_URL when dmgate sits behind a
        load balancer that terminates TLS, else what this request came in on."""
        if target.host is not None:
            return f"https://{target.host}"
        base = self._settings.public_url or f"{request.scheme}://{request.host}"
        return f"{base.rstrip('/')}/{target.route_name}"

    # --- signals ----------------------------------------------------------------------

    async def _signal(
        self, request: web.Request, target: Target, platform: Platform, call: Classified
    ) -> web.StreamResponse:
        data = request.content if request.body_exists else None
        headers = request_headers_for_upstream(request.headers)
        async with await self._relay.send(
            target.route_name, request.method, target.url, headers, data, target.host
        ) as upstream:
            size = upstream.content_length
            if not (200 <= upstream.status < 300) or (size is not None and size > MAX_SIGNAL_BODY):
                return await relay_response(request, upstream)
            chunks: list[bytes] = []
            size_so_far = 0
            with upstream_errors(target.route_name):  # cut mid-answer: 502, nothing sent yet
                async for chunk in upstream.content.iter_any():
                    chunks.append(chunk)
                    size_so_far += len(chunk)
                    if size_so_far > MAX_SIGNAL_BODY:
                        # Too big to learn from: send what we have and stream the rest.
                        return await relay_response(
                            request, upstream, prefix=b"".join(chunks), route=target.route_name
                        )
            body = b"".join(chunks)
            decoded = _decoded(body, upstream.headers.get("Content-Encoding", ""))
            rewritten = None
            if decoded is not None:
                rewritten = platform.rewrite_response(
                    call, decoded, self.public_url(request, target)
                )
            resp = web.Response(
                status=upstream.status,
                reason=upstream.reason,
                body=body if rewritten is None else rewritten,
            )
            resp.headers.extend(response_headers_for_client(upstream.headers))
            resp.headers.popall("Content-Length", None)
            if rewritten is not None:
                resp.headers.popall("Content-Encoding", None)  # sent decoded
            status = upstream.status
        if decoded is not None:
            await self._learn(target, platform, call, status, decoded)
        return resp

    async def _learn(
        self, target: Target, platform: Platform, call: Classified, status: int, body: bytes
    ) -> None:
        """Keep what a signal's answer teaches. Best effort: the tool's request must not
        fail because the store did."""
        try:
            sender = await self._identities.identify(None, platform, call)
            account = sender.account if sender.verified else None
            facts = platform.learn(call, account, status, body)
            await self._signals.record_facts(
                platform.name, facts, self._clock.now(), sender.credential_hash, source="traffic"
            )
            if facts:
                log.debug("signal_learnt", route=target.route_name, facts=len(facts))
        except StoreError as exc:
            log.warning("signal_not_recorded", route=target.route_name, error=exc.cause)

    # --- DMs --------------------------------------------------------------------------

    async def _dm(
        self, request: web.Request, target: Target, platform: Platform, call: Classified
    ) -> web.StreamResponse:
        try:
            sub = await self._submission(request, target, platform, call)
        except RequestTimeout as exc:
            self._refused(target, "body_timeout")
            return await _answer_and_hang_up(request, exc)
        except DMGateError:
            self._refused(target, "bad_dm")
            raise
        if isinstance(sub, bytes):  # no DM after all (the adapter said so from its body)
            self._count(target.route_name, Kind.PASSTHROUGH)
            return await self._forward(request, target, sub, decision=None)
        try:
            outcome = await self._pipeline.decide(sub)
        except DMGateError:
            self._count(target.route_name, Kind.DM)
            raise
        if isinstance(outcome, Unjudged):  # an edit of a message that is no DM
            self._count(target.route_name, Kind.PASSTHROUGH)
            return await self._forward(request, target, sub.body, decision=None)
        self._count(target.route_name, Kind.DM)
        if isinstance(outcome, Held):
            return self._held(outcome.row)
        if isinstance(outcome, Blocked):
            return as_http(outcome.answer, {DECISION_HEADER: "block"})
        if isinstance(outcome, Replay):
            return await self._answer_tool(request, outcome.key, outcome.answer, "allow")
        account = outcome.message.account
        response = await self._forward(
            request,
            target,
            sub.body,
            outcome.decision,
            outcome.key,
            on_answer=lambda answer: self._learn_sent(sub, account, answer),
        )
        if 200 <= response.status < 300:
            await self._pipeline.delivered(outcome.message)
        return response

    async def _learn_sent(self, sub: Submission, account: str, answer: Answer) -> None:
        """What the platform's answer to a forwarded send teaches (a direct status's id)."""
        if self._sent is None:
            return
        encoding = next((v for k, v in answer.headers if k.lower() == "content-encoding"), None)
        await self._sent.learn_sent(
            sub.platform, sub.call, account, answer.status, answer.body, encoding
        )

    def _refused(self, target: Target, reason: str) -> None:
        self._count(target.route_name, Kind.DM)
        self._metrics.refused_requests.labels(target.route_name, reason).inc()

    async def _submission(
        self, request: web.Request, target: Target, platform: Platform, call: Classified
    ) -> Submission | bytes:
        """The DM request read and parsed: judged as the platform will read it (decoded),
        forwarded as the tool sent it. Only the body when it is no DM after all; raises a
        DMGateError to answer with."""
        s = self._settings
        body = await read_dm_body(request, s.max_dm_body, s.client_body_timeout.total_seconds())
        readable = decoded_body(body, request.headers.get("Content-Encoding"), s.max_dm_body)
        kind = form_kind(request.headers.get("Content-Type"))
        if kind is not None and body_has_override(readable, kind):
            raise MethodOverride(
                "a _method form field is refused: the upstream could act on another method "
                "than the one dmgate judged"
            )
        try:
            dm = platform.parse_dm(call, readable)
        except NotADirectMessage:
            return body
        except BadDMRequest as exc:
            err = UnsupportedMediaType if exc.status == 415 else BadRequest
            raise err(f"{platform.name} DM request not forwarded: {exc}") from None
        headers = request_headers_for_upstream(request.headers)
        headers.popall("Content-Length", None)
        # The decoded copy is what a hold keeps (and a reviewer may edit): released as it
        # is, so without the coding it arrived in.
        headers.popall("Content-Encoding", None)
        held = StoredRequest(
            request.method, str(target.url), list(headers.items()), readable, target.host
        )
        return Submission(target, platform, call, dm, body, held)

    def _held(self, row: Row) -> web.Response:
        """What the tool hears of a hold: the platform's own success answer (or 202), the
        truth in headers. A retry of the same DM hears exactly the same."""
        status = 202 if self._settings.hold_status == "202" else row["response_status"]
        return web.Response(
            status=status,
            body=row["response_body"],
            headers={
                "Content-Type": row["response_content_type"],
                **row["response_headers"],
                DECISION_HEADER: "hold",
                HOLD_ID_HEADER: row["id"],
            },
        )

    async def _forward(
        self,
        request: web.Request,
        target: Target,
        body: bytes,
        decision: str | None,
        key: str | None = None,
        on_answer: Callable[[Answer], Awaitable[None]] | None = None,
    ) -> web.StreamResponse:
        """Send a DM request whose body was read (to judge it) from memory; `decision` is
        the `DMGate-Decision` header for the tool (None: it turned out to be no DM at all).
        With the DM's dedupe `key`, the answer is kept for a retry if the tool does not
        get it, and `on_answer` learns from it before the tool hears it (an edit may
        follow at once)."""
        headers = request_headers_for_upstream(request.headers)
        headers.popall("Content-Length", None)
        if key is not None:
            self._unanswered.begin(key)
        answer = None
        try:
            async with await self._relay.send(
                target.route_name, request.method, target.url, headers, body, target.host
            ) as upstream:
                if key is None:
                    return await relay_response(
                        request, upstream, {DECISION_HEADER: decision} if decision else None
                    )
                with upstream_errors(target.route_name):
                    raw = await upstream.read()  # the answer to one send: small
                answer = Answer(
                    upstream.status,
                    upstream.reason,
                    list(response_headers_for_client(upstream.headers).items()),
                    raw,
                )
        finally:
            if key is not None and answer is None:
                self._unanswered.finish(key, None, delivered=False)
        assert key is not None and decision is not None
        if on_answer is not None:
            await on_answer(answer)
        return await self._answer_tool(request, key, answer, decision)

    async def _answer_tool(
        self, request: web.Request, key: str, answer: Answer, decision: str
    ) -> web.StreamResponse:
        """Send the platform's answer to a DM and note whether the tool got it."""
        resp = WholeRelayedResponse(status=answer.status, reason=answer.reason)
        resp.headers.extend(answer.headers)
        resp.headers[DECISION_HEADER] = decision
        delivered = False
        transport = request.transport
        if transport is not None and not transport.is_closing():
            try:
                await resp.prepare(request)
                await resp.write_eof(answer.body)
                delivered = True
            except ConnectionError:
                pass
        self._unanswered.finish(key, answer, delivered)
        if not delivered:
            log.warning("dm_answer_undelivered", hint="kept for the tool's retry")
        return resp


async def read_dm_body(request: web.Request, limit: int, within: float) -> bytes:
    """The whole DM body, or 413 as soon as it is known to exceed `limit`, or 408 when it
    has not arrived `within` seconds (a client trickling bytes must not hold a judge)."""
    too_large = PayloadTooLarge(f"DM request bodies are limited to {limit} bytes", limit=limit)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        async with asyncio.timeout(within):
            body = await read_capped(request.content, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"the DM body did not arrive within {within:g} s (DMGATE_CLIENT_BODY_TIMEOUT); "
            "it was not forwarded"
        ) from None
    if body is None:
        raise too_large
    return body


async def _answer_and_hang_up(request: web.Request, exc: DMGateError) -> web.StreamResponse:
    """Answer, then close: waiting for the rest of a trickled body is what the timeout is
    there to stop (aiohttp would otherwise linger reading it)."""
    response = exc.response()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response


def _decoded(body: bytes, encoding: str) -> bytes | None:
    """A signal answer as the adapter should read it (the same decoder as DM bodies, one
    bound against a bomb); None if dmgate cannot decode it: it then teaches nothing."""
    try:
        return decoded_body(body, encoding, MAX_SIGNAL_DECODED)
    except DMGateError:
        return None
