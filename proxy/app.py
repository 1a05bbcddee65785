"""Builds the aiohttp Application: routes, middlewares, and the lifecycle of everything it
owns (store, upstream connection pool, background loops)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from yarl import URL

from proxy import review, webhooks
from proxy.clock import Clock
from proxy.contacts import Contacts
from proxy.context import CTX, Context
from proxy.crypto import Keyring, load_or_create_key_file
from proxy.edits import SentMessages
from proxy.errors import answering_errors
from proxy.forward_mode import ca
from proxy.forward_mode.certs import LeafCertificates
from proxy.gateway import Gateway
from proxy.holds import HoldService
from proxy.identity import SenderIdentities
from proxy.inbox import routes as inbox
from proxy.metrics import Metrics, create_metrics
from proxy.notify import Notifier
from proxy.pipeline import DecisionPipeline
from proxy.platforms import PLATFORMS
from proxy.platforms.base import Platform
from proxy.platforms.mastodon import MastodonPlatform
from proxy.policy_loader import PolicyHolder
from proxy.relay import Relay, client_session, upstream_tls
from proxy.reviewers import Reviewers
from proxy.routing import is_forward_mode
from proxy.settings import NO_PLATFORM, Settings
from proxy.store import Store, StoreError
from proxy.store.database import Database, sqlite_path
from proxy.unanswered import UnansweredSends
from proxy.upstream_pool import UpstreamPool
from proxy.workers import METRICS_DIR_VAR

log = structlog.get_logger("dmgate")

# The catch-all route: every path that is none of dmgate's own goes to the gateway.
GATEWAY_ROUTE = web.AppKey("gateway_route", web.ResourceRoute)
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def build_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """A ready-to-run dmgate. Raises `PolicyFileError` for a bad policy file. `clock`:
    the time everything is decided by (tests and `simulate` pass a manual one)."""
    ctx = _build(settings, clock or Clock())
    # Streaming pass-through bodies are not limited; judged DM bodies are (gateway).
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=settings.max_dm_body,
    )
    app[CTX] = ctx
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    review.add_routes(app)
    webhooks.add_routes(app)
    inbox.add_routes(app)
    app[GATEWAY_ROUTE] = app.router.add_route("*", "/{tail:.*}", ctx.gateway.handle)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _build(s: Settings, clock: Clock) -> Context:
    """Every part, each given the parts it uses."""
    metrics = create_metrics()
    policies = PolicyHolder(s.policy_file, metrics)
    platforms = _platforms(s)
    keyring = Keyring(_master_key(s))
    store = Store(Database(s.database_url, pool_size=s.database_pool_size))
    relay = _relay(s, metrics)
    wakeup = asyncio.Event()
    contacts = Contacts(policies, store.signals, clock)
    identities = SenderIdentities(keyring, store.signals, relay, metrics, clock)
    unanswered = UnansweredSends(clock)
    sent = SentMessages(store.signals, relay, clock)
    holds = HoldService(
        store,
        keyring,
        relay,
        platforms,
        s.routes,
        contacts,
        metrics,
        clock,
        ttl=s.hold_ttl,
        announce=review.announcement if s.review_webhook_url else None,
        on_announce=wakeup.set,
        sent=sent,
    )
    pipeline = DecisionPipeline(
        policies, store, identities, unanswered, holds, contacts, metrics, clock, edits=sent
    )
    gateway = Gateway(
        s,
        platforms,
        relay,
        pipeline,
        identities,
        store.signals,
        unanswered,
        metrics,
        clock,
        sent=sent,
    )
    return Context(
        settings=s,
        clock=clock,
        metrics=metrics,
        policies=policies,
        platforms=platforms,
        keyring=keyring,
        store=store,
        relay=relay,
        identities=identities,
        holds=holds,
        pipeline=pipeline,
        gateway=gateway,
        reviewers=Reviewers(s.review_tokens, store.tokens, clock),
        notifier=_notifier(s, store, metrics, clock, wakeup),
        certs=_forward_mode_certificates(s),
        notify_wakeup=wakeup,
    )


def _notifier(
    s: Settings, store: Store, metrics: Metrics, clock: Clock, wakeup: asyncio.Event
) -> Notifier | None:
    """The review endpoint's announcer, when there is an endpoint to announce to."""
    if not s.review_webhook_url:
        return None
    return Notifier(
        store,
        s.review_webhook_url,
        s.review_webhook_secret,
        metrics,
        clock,
        wakeup,
        slack=s.review_notify == "slack",
        public_url=s.public_url,
        reminder=s.review_reminder,
    )


def _relay(s: Settings, metrics: Metrics) -> Relay:
    limits = (
        s.upstream_pool_size,
        s.upstream_connect_timeout.total_seconds(),
        s.upstream_read_timeout.total_seconds(),
    )
    return Relay(
        metrics,
        lambda: client_session(*limits),
        lambda: UpstreamPool(*limits),
        upstream_tls(s.routes),
    )


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
    await ctx.store.start()
    await ctx.reviewers.load()
    ctx.relay.start()
    ctx.metrics.holds_pending.set(await ctx.store.holds.count_pending())
    tasks = [
        asyncio.create_task(ctx.holds.expire_loop(s.expiry_interval), name="expiry"),
        asyncio.create_task(
            ctx.policies.watch(s.policy_reload_interval.total_seconds()), name="policy-watch"
        ),
        asyncio.create_task(ctx.store.db.checkpoint_loop(), name="sqlite-checkpoint"),
        asyncio.create_task(
            retention_loop(ctx.store, ctx.policies, s, ctx.metrics, ctx.clock), name="retention"
        ),
    ]
    if ctx.notifier is not None:
        tasks.append(asyncio.create_task(ctx.notifier.loop(), name="notify"))
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
        await ctx.relay.close()
        await ctx.store.close()


def gateway_first(app: web.Application, routed: Handler) -> Handler:
    """The server's request handler: a request that can only be the gateway's goes to it
    directly, everything else through `routed` (the application: router, middleware).

    For a path under a route's prefix the router's and the middleware's answer is known
    in advance (the catch-all, then `edge_middleware`), and asking them cost every
    pass-through request ~5% of dmgate's CPU (bench/passthrough.py). Left to the router
    as before: a route whose name is also the first segment of one of dmgate's own paths
    (`/review`), a path with `.` segments or percent-escapes (the router decodes and may
    normalise; the gateway refuses dot segments either way), and `Expect` (the
    application answers `100-continue`)."""
    ctx = app[CTX]
    gateway = ctx.gateway.handle
    catch_all = app[GATEWAY_ROUTE]
    own = {r.canonical.split("/")[1] for r in app.router.resources() if r is not catch_all.resource}
    direct = frozenset(ctx.settings.routes) - own
    # What the router would have found for these requests (request.app reads it).
    match_info = UrlMappingMatchInfo({}, catch_all)
    match_info.add_app(app)
    match_info.freeze()

    # A plain function returning the coroutine to await: one frame less per request.
    def handle(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        if "Expect" in request.headers:
            return routed(request)
        path = request.raw_path.partition("?")[0]
        prefixed = (
            path[1:].partition("/")[0] in direct
            and "%" not in path
            and "/." not in path
            and "#" not in path
        )
        if not prefixed and not is_forward_mode(request):
            return routed(request)
        request._match_info = match_info  # type: ignore[attr-defined]
        return answering_errors(request, gateway)

    return handle


@web.middleware
async def edge_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """dmgate's one middleware: errors as JSON answers, and forward-mode requests to the
    gateway whatever their path (`https://api.x.com/metrics` must reach X, not dmgate's
    own /metrics). Most pass-through requests never meet it: `gateway_first` does the
    same for them without the router."""
    if is_forward_mode(request):
        handler = request.app[CTX].gateway.handle
    return await answering_errors(request, handler)


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
    if authority.expires_at - datetime.now(UTC) < timedelta(days=30):  # real time: TLS
        log.warning("ca_expires_soon", expires_at=authority.expires_at.isoformat())
    return LeafCertificates(authority)


def longest_window(policies: PolicyHolder) -> timedelta:
    """The furthest back any configured policy looks (off ones too: turning one on later
    should find its history)."""
    sections = policies.engine.config.policies.__dict__.values()
    windows = [w for sec in sections if isinstance(w := getattr(sec, "window", None), timedelta)]
    return max(windows, default=timedelta(hours=1))


async def retention_loop(
    store: Store, policies: PolicyHolder, s: Settings, metrics: Metrics, clock: Clock
) -> None:
    """Prune facts no policy can use any more; every replica may run it (the batches are
    idempotent deletes)."""
    interval = s.retention_interval.total_seconds()
    next_pass = clock.monotonic() + interval
    while True:
        await clock.sleep_until(next_pass)
        next_pass = clock.monotonic() + interval  # before the work: see proxy/clock.py
        now = clock.now()
        cutoff = now - longest_window(policies) - s.retention_margin
        # Profiles: also while a hold naming them may still wait for a reviewer.
        profiles_cutoff = now - max(longest_window(policies), s.hold_ttl) - s.retention_margin
        try:
            pruned = await store.prune(cutoff, profiles_cutoff)
        except Exception as exc:  # the store may be down: try again next time
            log.warning("retention_failed", error=type(exc).__name__)
            continue
        for kind, n in pruned.items():
            if n:
                metrics.retention_pruned.labels(kind).inc(n)
        if any(pruned.values()):
            log.info("retention_pruned", cutoff=cutoff.isoformat(), **pruned)


def _master_key(s: Settings) -> bytes:
    if s.secret_key is not None:
        return s.secret_key.get_secret_value().encode()
    db = sqlite_path(s.database_url)
    path = (db.parent if db else Path.cwd()) / "dmgate.key"
    return load_or_create_key_file(path)


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
    registry = request.app[CTX].metrics.registry
    if os.environ.get(METRICS_DIR_VAR):  # several workers: all of them, from their files
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
