"""The path of one proxied request: route → classify → pass through, learn, or judge."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from policies.model import Action, Decision, OutboundMessage, PolicyMatch
from proxy import holds
from proxy.context import CTX, Context
from proxy.errors import (
    BadRequest,
    DMGateError,
    MethodNotAllowed,
    PayloadTooLarge,
    PolicyFailure,
    RequestTimeout,
    UnsupportedMediaType,
)
from proxy.holds import DECISION_HEADER
from proxy.identity import Sender
from proxy.ids import new_id
from proxy.platforms.base import (
    BadDMRequest,
    Classified,
    Kind,
    NotADirectMessage,
    ParsedDM,
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
    WholeRelayedResponse,
    relay_response,
    request_headers_for_upstream,
    response_headers_for_client,
    upstream_errors,
)
from proxy.routing import Target, resolve
from proxy.store import StoreError, StoreUnavailable
from proxy.store.decisions import DecisionRecord
from proxy.store.holds import PENDING, REJECTED, SEND_FAILED, overruled
from proxy.streams import read_capped
from proxy.unanswered import Answer

log = structlog.get_logger("dmgate")

# The policy names of dmgate's own verdicts, beside the policy file's.
IDENTITY_POLICY = "sender_identity"
REVIEW_POLICY = "review"
# No platform delivers a longer DM (X's limit); beyond it the text is not judged further.
MAX_JUDGED_TEXT = 10_000
# Signal answers larger than this are passed through without being learnt from.
MAX_SIGNAL_BODY = 8 * 1024 * 1024
# ...and so are those that decompress to more than this.
MAX_SIGNAL_DECODED = 8 * MAX_SIGNAL_BODY


async def handle(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    target = resolve(request, ctx.settings)
    refused = check_request_head(request.method, request.headers, request.query_string)
    if refused is not None:
        ctx.metrics.refused_requests.labels(target.route_name, refused[0]).inc()
        raise (MethodOverride if refused[0] == "method_override" else BadRequest)(refused[1])
    platform = ctx.platforms.get(target.route.platform)
    view = RequestView(request.method, target.path, request.query, request.headers)
    try:
        call = platform.classify(view) if platform else Classified(view, Kind.PASSTHROUGH)
    except RefusedRequest as exc:
        ctx.metrics.refused_requests.labels(target.route_name, "dm_path_method").inc()
        raise MethodNotAllowed(f"{platform.name if platform else ''}: {exc}") from None
    kind = call.kind
    if kind is not Kind.DM:  # a DM candidate is counted once its body has been read
        ctx.metrics.requests.labels(target.route_name, kind.value).inc()
    if kind is Kind.DM:
        assert platform is not None
        return await _judge_dm(request, ctx, target, platform, call)
    if kind is Kind.SIGNAL:
        assert platform is not None
        return await _learn_from_signal(request, ctx, target, platform, call)
    return await ctx.relay.stream(request, target.route_name, target.url, target.host)


def as_http(answer: PlatformResponse, headers: dict[str, str] | None = None) -> web.Response:
    """An adapter's answer as an HTTP response (its content type may carry parameters)."""
    return web.Response(
        status=answer.status,
        body=answer.body_bytes(),
        headers={"Content-Type": answer.content_type, **answer.headers, **(headers or {})},
    )


def public_url(request: web.Request, ctx: Context, target: Target) -> str:
    """Where clients reach this route: in forward mode the host they called (they reach it
    through dmgate anyway); else DMGATE_PUBLIC_URL when dmgate sits behind a load balancer
    that terminates TLS, else what this request came in on."""
    if target.host is not None:
        return f"https://{target.host}"
    base = ctx.settings.public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}/{target.route_name}"


# --- signals --------------------------------------------------------------------------


async def _learn_from_signal(
    request: web.Request, ctx: Context, target: Target, platform: Platform, call: Classified
) -> web.StreamResponse:
    data = request.content if request.body_exists else None
    headers = request_headers_for_upstream(request.headers)
    async with await ctx.relay.send(
        target.route_name, request.method, target.url, headers, data, target.host
    ) as upstream:
        size = upstream.content_length
        if not (200 <= upstream.status < 300) or (size is not None and size > MAX_SIGNAL_BODY):
            return await relay_response(request, upstream)
        chunks: list[bytes] = []
        size_so_far = 0
        async for chunk in upstream.content.iter_any():
            chunks.append(chunk)
            size_so_far += len(chunk)
            if size_so_far > MAX_SIGNAL_BODY:
                # Too big to learn from: send what we have and stream the rest.
                return await relay_response(request, upstream, prefix=b"".join(chunks))
        body = b"".join(chunks)
        decoded = _decoded(body, upstream.headers.get("Content-Encoding", ""))
        rewritten = None
        if decoded is not None:
            rewritten = platform.rewrite_response(call, decoded, public_url(request, ctx, target))
        resp = web.Response(
            status=upstream.status,
            reason=upstream.reason,
            body=body if rewritten is None else rewritten,
        )
        resp.headers.extend(response_headers_for_client(upstream.headers))
        resp.headers.popall("Content-Length", None)
        if rewritten is not None:
            resp.headers.popall("Content-Encoding", None)  # sent decoded
    try:
        if decoded is not None:
            sender = await ctx.identities.identify(ctx, None, platform, call)
            account = sender.account if sender.verified else None
            facts = platform.learn(call, account, upstream.status, decoded)
            await ctx.store.signals.record_facts(
                platform.name, facts, datetime.now(UTC), sender.credential_hash, source="traffic"
            )
            if facts:
                log.debug("signal_learnt", route=target.route_name, facts=len(facts))
    except StoreError as exc:
        # Signals are best effort: the tool's request must not fail because the store did.
        log.warning("signal_not_recorded", route=target.route_name, error=exc.cause)
    return resp


def _decoded(body: bytes, encoding: str) -> bytes | None:
    """A signal answer as the adapter should read it (the same decoder as DM bodies, one
    bound against a bomb); None if dmgate cannot decode it: it then teaches nothing."""
    try:
        return decoded_body(body, encoding, MAX_SIGNAL_DECODED)
    except DMGateError:
        return None


# --- DMs ------------------------------------------------------------------------------


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


def _identity_match(ctx: Context, sender: Sender) -> PolicyMatch:
    """Fail closed: a DM whose sender could not be verified is held for a person."""
    what = (
        "no credential dmgate can read"
        if sender.credential_hash is None
        else ("the platform did not say whose credential this is")
    )
    return PolicyMatch(
        IDENTITY_POLICY,
        Action.HOLD,
        ctx.policies.engine.config.mode,
        f"{IDENTITY_POLICY}: the sending account could not be verified ({what})",
    )


async def _judge_dm(
    request: web.Request, ctx: Context, target: Target, platform: Platform, call: Classified
) -> web.StreamResponse:
    settings = ctx.settings
    try:
        body = await read_dm_body(
            request, settings.max_dm_body, settings.client_body_timeout.total_seconds()
        )
        # Judged as the platform will read it; forwarded as the tool sent it.
        readable = decoded_body(body, request.headers.get("Content-Encoding"), settings.max_dm_body)
        kind = form_kind(request.headers.get("Content-Type"))
        if kind is not None and body_has_override(readable, kind):
            raise MethodOverride(
                "a _method form field is refused: the upstream could act on another method "
                "than the one dmgate judged"
            )
        dm = platform.parse_dm(call, readable)
    except NotADirectMessage:
        ctx.metrics.requests.labels(target.route_name, Kind.PASSTHROUGH.value).inc()
        return await _forward_dm(request, ctx, target, body, decision=None)
    except BadDMRequest as exc:
        ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
        ctx.metrics.refused_requests.labels(target.route_name, "bad_dm").inc()
        err = UnsupportedMediaType if exc.status == 415 else BadRequest
        raise err(f"{platform.name} DM request not forwarded: {exc}") from None
    except RequestTimeout as exc:
        ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
        ctx.metrics.refused_requests.labels(target.route_name, "body_timeout").inc()
        # Answer, then hang up: waiting for the rest of a trickled body is what the
        # timeout is there to stop (aiohttp would otherwise linger reading it).
        response = exc.response()
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
        return response
    except DMGateError:
        ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
        ctx.metrics.refused_requests.labels(target.route_name, "bad_dm").inc()
        raise
    ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
    try:
        message, sender = await _message(ctx, target, platform, call, dm)
        ctx.metrics.sender_identity.labels(platform.name, sender.source).inc()
        account, recipients = message.account, message.recipients
        # An encrypted text says nothing: the request's bytes tell one DM from another.
        text_key = dm.text if not dm.opaque else "opaque:" + hashlib.sha256(body).hexdigest()
        key = holds.dedupe_key(platform.name, account, recipients, text_key)
        now = datetime.now(UTC)

        replay = await ctx.unanswered.previous(key)
        if replay is not None:
            # The tool retries a send it did not hear back from: it hears back now, and
            # the platform does not get the DM twice.
            _log_retry(ctx, message, "retry of a send whose answer the tool did not get")
            return await _answer_tool(request, ctx, key, replay, "allow")
        earlier = await ctx.store.holds.earlier_for_same_dm(key)
        if earlier is not None:
            answer = await _repeat_of_reviewed(
                request, ctx, target, platform, call, message, body, key, earlier, now
            )
            if answer is not None:
                return answer

        engine = ctx.policies.engine
        started = time.perf_counter()
        try:
            decision = await engine.evaluate(_judged(message), ctx.store.signals, now)
        except StoreError:  # the store's, not the policy's: answered as such
            raise
        except Exception as exc:
            log.exception("policy_failed", route=target.route_name)
            raise PolicyFailure(
                "a policy failed while judging this DM; it was not forwarded"
            ) from exc
        finally:
            ctx.metrics.policy_evaluation.observe(time.perf_counter() - started)
        if not sender.verified:
            decision = decision.with_match(_identity_match(ctx, sender))

        decision_id = new_id()
        record = DecisionRecord(
            id=decision_id,
            created_at=now,
            route=target.route_name,
            platform=platform.name,
            account=account,
            recipients=list(recipients),
            action=decision.action.value,
            would_action=decision.would_action.value,
            matches=[m.as_dict() for m in decision.matches],
            policy_version=decision.policy_version,
        )
        _count(ctx, message.platform, decision)
        if decision.action is Action.HOLD:
            row = await holds.create_hold(
                ctx,
                request,
                target,
                platform,
                call,
                dm,
                message,
                readable,
                key,
                decision,
                record,
                now,
            )
            _log_decision(ctx, decision_id, message, decision, row["id"])
            return holds.hold_answer(ctx, row)
        await ctx.store.decisions.record(record)
    except StoreError as exc:
        # Any store failure fails the DM closed: 503, counted and logged (the error's type
        # only) by error_middleware. Also a value the store refused (PostgreSQL: a NUL in
        # the text): a traceback would log the driver's message, which carries the text.
        raise StoreUnavailable(
            exc.cause,
            "dmgate's store is unreachable; DMs are refused (not forwarded) until it is back",
        ) from exc
    _log_decision(ctx, decision_id, message, decision, None)
    if decision.action is Action.BLOCK:
        reason = "; ".join(m.reason for m in decision.enforced if m.action is Action.BLOCK)
        answer = platform.block_response(call, reason)
        return as_http(answer, {DECISION_HEADER: "block"})
    header = f"{decision.would_action.value}; shadow" if decision.shadow else "allow"
    response = await _forward_dm(request, ctx, target, body, decision=header, key=key)
    if 200 <= response.status < 300:
        await holds.note_reached(ctx, message.platform, message.account, message.recipients)
    return response


async def _repeat_of_reviewed(
    request: web.Request,
    ctx: Context,
    target: Target,
    platform: Platform,
    call: Classified,
    message: OutboundMessage,
    body: bytes,
    key: str,
    earlier: dict[str, Any],
    now: datetime,
) -> web.StreamResponse | None:
    """A DM the tool sends again after it was held: a reviewer's decision binds it. None:
    judge it like any DM."""
    if earlier["status"] == PENDING:
        # A retry of a held DM: the same hold, and the policies do not count it again.
        _log_retry(ctx, message, "retry of an existing hold", earlier["id"], earlier["id"])
        return holds.hold_answer(ctx, earlier)
    approved_again = earlier["status"] == SEND_FAILED and earlier["release_key"] == key
    if approved_again and await ctx.store.holds.take_failed_retry(earlier["id"], now):
        # Exactly what the reviewer approved, once: the release failed, the tool retries.
        _log_retry(ctx, message, "retry of an approved hold whose send failed", earlier["id"])
        response = await _forward_dm(request, ctx, target, body, decision="allow")
        if 200 <= response.status < 300:
            await holds.note_reached(ctx, message.platform, message.account, message.recipients)
        return response
    if overruled(earlier):
        verdict = (
            f"a reviewer rejected this DM (hold {earlier['id']}): {earlier['reason'] or ''}"
            if earlier["status"] == REJECTED
            else f"a reviewer approved only an edited text of this DM (hold {earlier['id']})"
        )
        _log_retry(ctx, message, verdict, earlier["id"])
        answer = platform.block_response(call, f"{REVIEW_POLICY}: {verdict}".rstrip(": "))
        return as_http(answer, {DECISION_HEADER: "block"})
    return None


def _judged(message: OutboundMessage) -> OutboundMessage:
    """What the policies read: no more text than any platform delivers in one DM (X:
    10,000 characters), so a megabyte of text cannot stall the event loop."""
    if len(message.text) <= MAX_JUDGED_TEXT:
        return message
    return replace(message, text=message.text[:MAX_JUDGED_TEXT])


async def _message(
    ctx: Context, target: Target, platform: Platform, call: Classified, dm: ParsedDM
) -> tuple[OutboundMessage, Sender]:
    """The DM as the policies see it: sender identified, recipients resolved (members of a
    conversation the send names only by id), recipients' names for the template placeholder."""
    sender = await ctx.identities.identify(ctx, target, platform, call, hint=dm.account_hint)
    if not dm.recipients and dm.conversation_id:
        members = await ctx.store.signals.conversation_members(platform.name, dm.conversation_id)
        dm = replace(dm, recipients=members or (dm.conversation_id,))
    recipients = platform.recipients_for(dm, sender.account)
    names = dm.recipient_names + await ctx.store.signals.recipient_names(platform.name, recipients)
    message = OutboundMessage(
        platform=platform.name,
        account=sender.account,
        recipients=recipients,
        text=dm.text,
        route=target.route_name,
        recipient_names=names,
        opaque=dm.opaque,
    )
    return message, sender


async def _forward_dm(
    request: web.Request,
    ctx: Context,
    target: Target,
    body: bytes,
    decision: str | None,
    key: str | None = None,
) -> web.StreamResponse:
    """Send a DM request whose body was read (to judge it) from memory; `decision` is the
    `DMGate-Decision` header for the tool (None: it turned out to be no DM at all). With
    the DM's dedupe `key`, the answer is kept for a retry if the tool does not get it."""
    headers = request_headers_for_upstream(request.headers)
    headers.popall("Content-Length", None)
    if key is not None:
        ctx.unanswered.begin(key)
    answer = None
    try:
        async with await ctx.relay.send(
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
            ctx.unanswered.finish(key, None, delivered=False)
    assert key is not None and decision is not None
    return await _answer_tool(request, ctx, key, answer, decision)


async def _answer_tool(
    request: web.Request, ctx: Context, key: str, answer: Answer, decision: str
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
    ctx.unanswered.finish(key, answer, delivered)
    if not delivered:
        log.warning("dm_answer_undelivered", hint="kept for the tool's retry")
    return resp


def _count(ctx: Context, platform: str, decision: Decision) -> None:
    mode = "shadow" if decision.shadow else "enforce"
    action = decision.would_action if decision.shadow else decision.action
    ctx.metrics.dm_decisions.labels(platform, action.value, mode).inc()
    for m in decision.matches:
        ctx.metrics.policy_matches.labels(m.policy, m.action.value, m.mode.value).inc()


def _message_fields(decision_id: str, message: OutboundMessage) -> dict[str, object]:
    return {
        "decision_id": decision_id,
        "route": message.route,
        "platform": message.platform,
        "account": message.account,
        "recipients": list(message.recipients),
    }


def _log_decision(
    ctx: Context,
    decision_id: str,
    message: OutboundMessage,
    decision: Decision,
    hold_id: str | None,
) -> None:
    """The one canonical record per DM. Never the text, never credentials."""
    log.info(
        "dm_decision",
        **_message_fields(decision_id, message),
        action=decision.action.value,
        would_action=decision.would_action.value,
        mode="shadow" if decision.shadow else "enforce",
        policies=[m.as_dict() for m in decision.matches],
        evaluation_ms=round(decision.evaluation_seconds * 1000, 3),
        policy_version=decision.policy_version,
        hold_id=hold_id,
    )


def _log_retry(
    ctx: Context,
    message: OutboundMessage,
    reason: str,
    retry_of: str | None = None,
    hold_id: str | None = None,
) -> None:
    """A DM the policies did not judge again: a retry of one they already judged."""
    log.info(
        "dm_decision",
        **_message_fields(new_id(), message),
        action="hold" if hold_id else "allow",
        mode="enforce",
        reason=reason,
        retry_of=retry_of,
        hold_id=hold_id,
    )
