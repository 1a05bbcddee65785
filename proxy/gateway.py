"""The path of one proxied request: route → classify → pass through, learn, or judge."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import zlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from aiohttp import StreamReader, web
from sqlalchemy.exc import SQLAlchemyError

from policies.model import Action, Decision, OutboundMessage
from proxy import holds
from proxy.context import CTX, Context
from proxy.errors import (
    BadRequest,
    PayloadTooLarge,
    PolicyFailure,
    StoreUnavailable,
    UnsupportedMediaType,
)
from proxy.forward import (
    WholeRelayedResponse,
    relay_response,
    request_headers_for_upstream,
    response_headers_for_client,
    upstream_errors,
)
from proxy.holds import DECISION_HEADER
from proxy.ids import new_id
from proxy.platforms.base import (
    BadDMRequest,
    Kind,
    NotADirectMessage,
    ParsedDM,
    Platform,
    PlatformResponse,
    RequestView,
)
from proxy.routing import Target, resolve
from proxy.store.holds import PENDING, DecisionRecord
from proxy.unanswered import Answer

log = structlog.get_logger("dmgate")

ACCOUNT_HEADER = "DMGate-Account"
# Signal answers larger than this are passed through without being learnt from.
MAX_SIGNAL_BODY = 8 * 1024 * 1024


async def handle(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    target = resolve(request, ctx.settings)
    platform = ctx.platforms.get(target.route.platform)
    view = RequestView(request.method, target.path, request.query, request.headers)
    kind = platform.classify(view) if platform else Kind.PASSTHROUGH
    if kind is not Kind.DM:  # a DM candidate is counted once its body has been read
        ctx.metrics.requests.labels(target.route_name, kind.value).inc()
    if kind is Kind.DM:
        assert platform is not None
        return await _judge_dm(request, ctx, target, platform, view)
    if kind is Kind.SIGNAL:
        assert platform is not None
        return await _learn_from_signal(request, ctx, target, platform, view)
    return await ctx.forwarder.stream(request, target.route_name, target.url, target.host)


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


# --- who is sending -------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    account: str
    credential_hash: str | None
    identified: bool  # False: `account` is a stand-in (the keyed credential hash)


async def identify_sender(
    ctx: Context, platform: Platform, view: RequestView, hint: str | None = None
) -> Sender:
    """Who is sending. Order: the tool's `DMGate-Account` header, what the request names
    itself (OAuth 1.0a token, a DM body naming its sender), the account a `me` answer
    taught us for this credential, and last the keyed credential hash itself, so a DM from
    an unknown sender is still judged."""
    credential = platform.credential(view)
    cred_hash = ctx.keyring.credential_hash(credential) if credential else None
    explicit = view.headers.get(ACCOUNT_HEADER, "").strip()
    if explicit:
        return Sender(explicit, cred_hash, True)
    named = hint or platform.account_from_request(view)
    if named:
        return Sender(named, cred_hash, True)
    if cred_hash:
        known = await ctx.store.signals.account_for_credential(platform.name, cred_hash)
        if known:
            return Sender(known, cred_hash, True)
        return Sender(f"credential:{cred_hash[:16]}", cred_hash, False)
    return Sender("anonymous", None, False)


# --- signals --------------------------------------------------------------------------


async def _learn_from_signal(
    request: web.Request, ctx: Context, target: Target, platform: Platform, view: RequestView
) -> web.StreamResponse:
    data = request.content if request.body_exists else None
    headers = request_headers_for_upstream(request.headers)
    async with await ctx.forwarder.send(
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
            rewritten = platform.rewrite_response(view, decoded, public_url(request, ctx, target))
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
            sender = await identify_sender(ctx, platform, view)
            account = sender.account if sender.identified else None
            facts = platform.learn(view, account, upstream.status, decoded)
            await ctx.store.signals.record_facts(
                platform.name, facts, datetime.now(UTC), sender.credential_hash, source="traffic"
            )
            if facts:
                log.debug("signal_learnt", route=target.route_name, facts=len(facts))
    except (SQLAlchemyError, OSError) as exc:
        # Signals are best effort: the tool's request must not fail because the store did.
        log.warning("signal_not_recorded", route=target.route_name, error=type(exc).__name__)
    return resp


def _decoded(body: bytes, encoding: str) -> bytes | None:
    """The body as the adapter should read it; None if dmgate cannot decode it."""
    enc = encoding.strip().lower()
    try:
        if enc in ("", "identity"):
            return body
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        return None
    return None


# --- DMs ------------------------------------------------------------------------------


async def read_capped(stream: StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` (what was read is lost, so
    only use this where the caller then refuses the request or has kept a copy)."""
    body = bytearray()
    async for chunk in stream.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def read_dm_body(request: web.Request, limit: int) -> bytes:
    """The whole DM body, or 413 as soon as it is known to exceed `limit`."""
    too_large = PayloadTooLarge(f"DM request bodies are limited to {limit} bytes", limit=limit)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = await read_capped(request.content, limit)
    if body is None:
        raise too_large
    return body


def dedupe_key(platform: str, account: str, recipients: tuple[str, ...], text: str) -> str:
    material = json.dumps([platform, account, sorted(recipients), text]).encode()
    return hashlib.sha256(material).hexdigest()


async def _judge_dm(
    request: web.Request, ctx: Context, target: Target, platform: Platform, view: RequestView
) -> web.StreamResponse:
    body = await read_dm_body(request, ctx.settings.max_dm_body)
    try:
        dm = platform.parse_dm(view, body)
    except NotADirectMessage:
        ctx.metrics.requests.labels(target.route_name, Kind.PASSTHROUGH.value).inc()
        return await _forward_dm(request, ctx, target, body, decision=None)
    except BadDMRequest as exc:
        ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
        err = UnsupportedMediaType if exc.status == 415 else BadRequest
        raise err(f"{platform.name} DM request not forwarded: {exc}") from None
    ctx.metrics.requests.labels(target.route_name, Kind.DM.value).inc()
    try:
        message = await _message(ctx, target, platform, view, dm)
        account, recipients = message.account, message.recipients
        key = dedupe_key(platform.name, account, recipients, dm.text)
        now = datetime.now(UTC)

        replay = await ctx.unanswered.previous(key)
        if replay is not None:
            # The tool retries a send it did not hear back from: it hears back now, and
            # the platform does not get the DM twice.
            _log_retry(ctx, message, "retry of a send whose answer the tool did not get")
            return await _answer_tool(request, ctx, key, replay, "allow")
        earlier = await ctx.store.holds.earlier_for_same_dm(key)
        if earlier is not None and earlier["status"] == PENDING:
            # A retry of a held DM: the same hold, and the policies do not count it again.
            _log_retry(ctx, message, "retry of an existing hold", earlier["id"], earlier["id"])
            return holds.hold_answer(ctx, earlier)
        if earlier is not None and await ctx.store.holds.take_failed_retry(earlier["id"], now):
            _log_retry(ctx, message, "retry of an approved hold whose send failed", earlier["id"])
            response = await _forward_dm(request, ctx, target, body, decision="allow")
            if 200 <= response.status < 300:
                await holds.note_reached(ctx, message.platform, message.account, recipients)
            return response

        engine = ctx.policies.engine
        started = time.perf_counter()
        try:
            decision = await engine.evaluate(message, ctx.store.signals, now)
        except SQLAlchemyError:
            raise
        except Exception as exc:
            log.exception("policy_failed", route=target.route_name)
            raise PolicyFailure(
                "a policy failed while judging this DM; it was not forwarded"
            ) from exc
        finally:
            ctx.metrics.policy_evaluation.observe(time.perf_counter() - started)

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
                ctx, request, target, platform, view, dm, message, body, key, decision, record, now
            )
            _log_decision(ctx, decision_id, message, decision, row["id"])
            return holds.hold_answer(ctx, row)
        await ctx.store.holds.record_decision(record)
    except (SQLAlchemyError, OSError) as exc:
        ctx.metrics.store_failures.inc()
        log.error("store_unavailable", route=target.route_name, error=type(exc).__name__)
        raise StoreUnavailable(
            "dmgate's store is unreachable; DMs are refused (not forwarded) until it is back"
        ) from None
    _log_decision(ctx, decision_id, message, decision, None)
    if decision.action is Action.BLOCK:
        reason = "; ".join(m.reason for m in decision.enforced if m.action is Action.BLOCK)
        answer = platform.block_response(view, reason)
        return as_http(answer, {DECISION_HEADER: "block"})
    header = f"{decision.would_action.value}; shadow" if decision.shadow else "allow"
    response = await _forward_dm(request, ctx, target, body, decision=header, key=key)
    if 200 <= response.status < 300:
        await holds.note_reached(ctx, message.platform, message.account, message.recipients)
    return response


async def _message(
    ctx: Context, target: Target, platform: Platform, view: RequestView, dm: ParsedDM
) -> OutboundMessage:
    """The DM as the policies see it: sender identified, recipients resolved (members of a
    conversation the send names only by id), recipients' names for the template placeholder."""
    sender = await identify_sender(ctx, platform, view, hint=dm.account_hint)
    if not dm.recipients and dm.conversation_id:
        members = await ctx.store.signals.conversation_members(platform.name, dm.conversation_id)
        dm = replace(dm, recipients=members or (dm.conversation_id,))
    recipients = platform.recipients_for(dm, sender.account)
    names = dm.recipient_names + await ctx.store.signals.recipient_names(platform.name, recipients)
    return OutboundMessage(
        platform=platform.name,
        account=sender.account,
        recipients=recipients,
        text=dm.text,
        route=target.route_name,
        recipient_names=names,
    )


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
        async with await ctx.forwarder.send(
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
