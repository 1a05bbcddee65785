"""Everything one running dmgate owns, built whole by `proxy.app.build_app` (no
module-level connections, so tests can run several instances in one process).

Each part gets the other parts it uses when it is built; nothing below the HTTP edges
(request handlers, the listener, the application's lifecycle) looks anything up here.
Parts that do I/O open it in the application's start-up (`Store.start`, `Relay.start`)
and close it on cleanup.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from proxy.clock import Clock
from proxy.crypto import Keyring
from proxy.forward_mode.certs import LeafCertificates
from proxy.gateway import Gateway
from proxy.holds import HoldService
from proxy.identity import SenderIdentities
from proxy.metrics import Metrics
from proxy.notify import Notifier
from proxy.pipeline import DecisionPipeline
from proxy.platforms.base import Platform
from proxy.policy_loader import PolicyHolder
from proxy.relay import Relay
from proxy.reviewers import Reviewers
from proxy.settings import Settings
from proxy.store import Store


@dataclass(frozen=True)
class Context:
    settings: Settings
    clock: Clock
    metrics: Metrics
    policies: PolicyHolder
    platforms: dict[str, Platform]  # by platform name
    keyring: Keyring
    store: Store
    relay: Relay
    identities: SenderIdentities
    holds: HoldService
    pipeline: DecisionPipeline
    gateway: Gateway
    reviewers: Reviewers
    notifier: Notifier | None  # None: no review webhook configured
    # Forward mode's certificates; None when no route owns a host or the CA is unusable.
    certs: LeafCertificates | None
    notify_wakeup: asyncio.Event


CTX = web.AppKey("dmgate_context", Context)
