"""Everything one running dmgate owns, created in the application's lifecycle (no
module-level connections), so tests can run several instances in one process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from proxy.crypto import Keyring
from proxy.forward_mode.certs import LeafCertificates
from proxy.identity import SenderIdentities
from proxy.metrics import Metrics
from proxy.platforms.base import Platform
from proxy.policy_loader import PolicyHolder
from proxy.relay import Relay
from proxy.settings import Settings
from proxy.store import Store
from proxy.unanswered import UnansweredSends


@dataclass
class Context:
    settings: Settings
    metrics: Metrics
    policies: PolicyHolder
    platforms: dict[str, Platform]  # by platform name
    store: Store = field(init=False)
    keyring: Keyring = field(init=False)
    relay: Relay = field(init=False)
    # Forward mode's certificates; None when no route owns a host or the CA is unusable.
    certs: LeafCertificates | None = None
    # name -> sha256 of the token (settings' tokens and any generated one)
    review_tokens: list[tuple[str, str]] = field(default_factory=list)
    notify_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    unanswered: UnansweredSends = field(default_factory=UnansweredSends)
    identities: SenderIdentities = field(default_factory=SenderIdentities)


CTX = web.AppKey("dmgate_context", Context)
