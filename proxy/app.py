"""Builds the aiohttp Application: routes, middlewares, and the lifecycle of everything it
owns (store, upstream connection pool, background loops)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from proxy import gateway, review, webhooks
from proxy.context import CTX, Context
from proxy.crypto import Keyring, load_or_create_key_file
from proxy.errors import error_middleware
from proxy.forward_mode import ca
from proxy.forward_mode.certs import LeafCertificates
from proxy.holds import expire_loop
from proxy.inbox import routes as inbox
from proxy.metrics import create_metrics
from proxy.notify import notify_loop
from proxy.platforms import PLATFORMS
from proxy.platforms.base import Platform
from proxy.platforms.mastodon import MastodonPlatform
from proxy.policy_loader import PolicyHolder
from proxy.relay import Relay, client_session, upstream_tls
from proxy.review import token_digest
from proxy.routing import is_forward_mode
from proxy.settings import NO_PLATFORM, Settings
from proxy.store import Store, StoreError
from proxy.store.database import sqlite_path

log = structlog.get_logger("dmgate")


def build_app(settings: Settings) -> web.Application:
    """A ready-to-run dmgate. Raises `PolicyFileError` for a bad policy file."""
    metrics = create_metrics()
    ctx = Context(
        settings=settings,
        metrics=metrics,
        policies=PolicyHolder(settings.policy_file, metrics),
        platforms=_platforms(settings),
    )
    # Streaming pass-through bodies are not limited; judged DM bodies are (gateway).
    app = web.Application(
        middlewares=[error_middleware, forward_mode_middleware],
        client_max_size=settings.max_dm_body,
    )
    app[CTX] = ctx
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    review.add_routes(app)
    webhooks.add_routes(app)
    inbox.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _platforms(settings: Settings) -> dict[str, Platform]:
    """One adapter per platform. Mastodon's learns its instances' own domains, so that
    `@alice` and `@alice@your.instance` are one recipient."""
    adapters: dict[str, Platform] = {name: cls() for name, cls in PLATFORMS.items()}
    local = {
        URL(r.upstream).host or ""
        for r in settings.routes.values()
        if r.platform == MastodonPlatform.name
    } | {
        h for r in settings.routes.values() if r.platform == MastodonPlatform.name for h in r.hosts
    }
    adapters[MastodonPlatform.name] = MastodonPlatform(local_domains=frozenset(local - {""}))
    return adapters


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    s = ctx.settings
    ctx.keyring = Keyring(_master_key(s))
    ctx.store = await Store.open(s.database_url, pool_size=s.database_pool_size)
    ctx.review_tokens = await _review_tokens(ctx)
    session = client_session(
        s.upstream_pool_size,
        s.upstream_connect_timeout.total_seconds(),
        s.upstream_read_timeout.total_seconds(),
    )
    ctx.relay = Relay(session, ctx.metrics, upstream_tls(s.routes))
    ctx.certs = _forward_mode_certificates(s)
    ctx.metrics.holds_pending.set(await ctx.store.holds.count_pending())
    tasks = [
        asyncio.create_task(expire_loop(ctx), name="expiry"),
        asyncio.create_task(
            ctx.policies.watch(s.policy_reload_interval.total_seconds()), name="policy-watch"
        ),
        asyncio.create_task(ctx.store.db.checkpoint_loop(), name="sqlite-checkpoint"),
        asyncio.create_task(retention_loop(ctx), name="retention"),
    ]
    if s.review_webhook_url:
        tasks.append(asyncio.create_task(notify_loop(ctx), name="notify"))
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, ctx.policies.reload, "SIGHUP")
    log.info(
        "dmgate_started",
        routes=sorted(s.routes),
        policy_version=ctx.policies.engine.version,
        database=s.database_url.split(":", 1)[0],
        # Routes set to platform "none": forwarded, never judged (said at every start).
        unjudged_routes=sorted(n for n, r in s.routes.items() if r.platform == NO_PLATFORM),
    )
    # Everything loaded so far lives for the whole run: keep it out of the garbage
    # collector's full passes (measured: 43 ms pauses every ~0.5 s under load without this).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        await ctx.store.close()


@web.middleware
async def forward_mode_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Forward-mode requests are the platform's, whatever their path: `https://api.x.com/
    metrics` must reach X, not dmgate's own /metrics."""
    if is_forward_mode(request):
        return await gateway.handle(request)
    return await handler(request)


def _forward_mode_certificates(s: Settings) -> LeafCertificates | None:
    """The CA for intercepted hosts, created on first start. Without one, forward mode
    refuses CONNECT to routes' hosts (503) and everything else keeps working."""
    hosts = sorted(s.host_routes)
    if not hosts:
        return None
    directory, passphrase = ca.location(s)
    try:
        authority = ca.ensure(directory, hosts, passphrase)
    except (ca.CAError, OSError) as exc:
        log.error("forward_mode_unavailable", reason=str(exc))
        return None
    uncovered = [h for h in hosts if not authority.covers(h)]
    log.info(
        "forward_mode_ready",
        ca_certificate=str(authority.cert_path),
        ca_expires_at=authority.expires_at.isoformat(),
        intercepted_hosts=[h for h in hosts if h not in uncovered],
    )
    if uncovered:
        log.warning(
            "ca_does_not_cover_hosts",
            hosts=uncovered,
            hint="run `dmgate ca init --force` and trust the new CA",
        )
    if authority.expires_at - datetime.now(UTC) < timedelta(days=30):
        log.warning("ca_expires_soon", expires_at=authority.expires_at.isoformat())
    return LeafCertificates(authority)


def longest_window(ctx: Context) -> timedelta:
    """The furthest back any configured policy looks (off ones too: turning one on later
    should find its history)."""
    sections = ctx.policies.engine.config.policies.__dict__.values()
    windows = [w for sec in sections if isinstance(w := getattr(sec, "window", None), timedelta)]
    return max(windows, default=timedelta(hours=1))


async def retention_loop(ctx: Context) -> None:
    """Prune facts no policy can use any more; every replica may run it (the batches are
    idempotent deletes)."""
    while True:
        await asyncio.sleep(ctx.settings.retention_interval.total_seconds())
        now = datetime.now(UTC)
        cutoff = now - longest_window(ctx) - ctx.settings.retention_margin
        # Profiles: also while a hold naming them may still wait for a reviewer.
        profiles_cutoff = (
            now - max(longest_window(ctx), ctx.settings.hold_ttl) - ctx.settings.retention_margin
        )
        try:
            pruned = await ctx.store.prune(cutoff, profiles_cutoff)
        except Exception as exc:  # the store may be down: try again next time
            log.warning("retention_failed", error=type(exc).__name__)
            continue
        for kind, n in pruned.items():
            if n:
                ctx.metrics.retention_pruned.labels(kind).inc(n)
        if any(pruned.values()):
            log.info("retention_pruned", cutoff=cutoff.isoformat(), **pruned)


def _master_key(s: Settings) -> bytes:
    if s.secret_key is not None:
        return s.secret_key.get_secret_value().encode()
    db = sqlite_path(s.database_url)
    path = (db.parent if db else Path.cwd()) / "dmgate.key"
    return load_or_create_key_file(path)


async def _review_tokens(ctx: Context) -> list[tuple[str, str]]:
    if ctx.settings.review_tokens:
        return [(n, token_digest(t.get_secret_value())) for n, t in ctx.settings.review_tokens]
    stored = await ctx.store.tokens.all()
    if stored:
        return stored
    token = secrets.token_urlsafe(32)
    if await ctx.store.tokens.add("generated", token_digest(token), datetime.now(UTC)):
        # Printed once, to the operator's terminal, never to the structured log.
        print(
            "dmgate: no DMGATE_REVIEW_TOKENS set; generated a review API token "
            f"(shown only now, store it safely):\n\n    {token}\n",
            file=sys.stderr,
            flush=True,
        )
    return await ctx.store.tokens.all()


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[CTX].store.ping(), timeout=2)
    except Exception as exc:
        cause = exc.cause if isinstance(exc, StoreError) else type(exc).__name__
        return web.json_response(
            {"status": "not ready", "store": f"unreachable ({cause})"}, status=503
        )
    return web.json_response({"status": "ready", "store": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[CTX].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
