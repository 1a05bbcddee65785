"""Webhook receivers (`/webhooks/{platform}`): the platforms' push events teach dmgate
follows (with exact times) and who wrote first. Payloads can be relayed on to the tool's
own webhook so putting dmgate in front loses nothing."""

from __future__ import annotations

import aiohttp
import structlog
from aiohttp import web

from proxy.context import CTX
from proxy.errors import NotFound, PayloadTooLarge, Unauthorized
from proxy.gateway import as_http
from proxy.platforms.base import WebhookPlatform
from proxy.relay import request_headers_for_upstream
from proxy.store import UnstorableValue
from proxy.streams import read_capped

log = structlog.get_logger("dmgate.webhooks")
MAX_WEBHOOK_BODY = 1024 * 1024


def _platform(request: web.Request) -> tuple[WebhookPlatform, str | None]:
    ctx = request.app[CTX]
    name = request.match_info["platform"]
    platform = ctx.platforms.get(name)
    if not isinstance(platform, WebhookPlatform):  # unknown, or a network without webhooks
        raise NotFound(f"no webhook receiver for platform {name!r}")
    secret = ctx.settings.webhook_secrets.get(name)
    return platform, secret.get_secret_value() if secret else None


async def challenge(request: web.Request) -> web.Response:
    platform, secret = _platform(request)
    answer = platform.webhook_challenge(request.query, secret)
    if answer is None:
        raise NotFound("not a webhook challenge request")
    return as_http(answer)


async def receive(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    platform, secret = _platform(request)
    too_large = PayloadTooLarge(
        f"webhook payloads are limited to {MAX_WEBHOOK_BODY} bytes", limit=MAX_WEBHOOK_BODY
    )
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BODY:
        raise too_large
    body = await read_capped(request.content, MAX_WEBHOOK_BODY)
    if body is None:
        raise too_large
    if not platform.webhook_signature_valid(request.headers, body, secret):
        log.warning("webhook_signature_invalid", platform=platform.name)
        raise Unauthorized("webhook signature missing or invalid")
    now = ctx.clock.now()
    # Adapters read odd payloads as "no facts"; a store outage is a 503 (error_middleware),
    # so the platform delivers the event again.
    facts = platform.webhook_facts(body, now)
    try:
        await ctx.store.signals.record_facts(platform.name, facts, now, source="webhook")
    except UnstorableValue as exc:
        # Authentic, but carrying values the store cannot keep (PostgreSQL: NUL characters,
        # ids longer than their columns): it teaches nothing, and is still relayed.
        log.warning("webhook_facts_not_recorded", platform=platform.name, error=exc.cause)
        facts = []
    log.info("webhook_received", platform=platform.name, facts=len(facts))
    relay = ctx.settings.webhook_relay.get(platform.name)
    if relay:
        await _relay(ctx.relay.session, relay, request, body)
    return web.Response(status=200)


async def _relay(
    session: aiohttp.ClientSession, url: str, request: web.Request, body: bytes
) -> None:
    headers = request_headers_for_upstream(request.headers)
    headers.popall("Content-Length", None)
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status >= 300:
                log.warning("webhook_relay_failed", status=resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("webhook_relay_failed", error=type(exc).__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhooks/{platform}", challenge)
    app.router.add_post("/webhooks/{platform}", receive)
