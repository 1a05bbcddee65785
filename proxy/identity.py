"""Who is sending a DM: verified, never merely asserted.

Order of trust:
1. what the request itself proves (`Platform.account_from_request` or a DM body naming
   its sender the platform enforces: an OAuth 1.0a token's user id, a JWT `sub`, a page id
   in a Graph send path);
2. what an earlier `me` answer taught dmgate about this credential (the store maps the
   keyed credential hash to the account);
3. for a credential dmgate has never identified: the platform's own "who am I" endpoint,
   asked once with that credential (`Platform.whoami`), the answer kept like any learnt
   identity.

The tool's `DMGate-Account` header never overrides any of these: where it disagrees, the
DM is judged as the verified account and the disagreement is logged and counted. A DM
whose sender cannot be verified is judged, then held (fail closed): judged as a stranger
with no history it would slip past every per-account policy.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from proxy.clock import Clock
from proxy.crypto import Keyring
from proxy.facts import Identity
from proxy.lookups import LOOKUP_FAILURES, ask
from proxy.metrics import Metrics
from proxy.platforms.base import Classified, Platform
from proxy.relay import Relay
from proxy.routing import Target
from proxy.store.signals import StoreSignals

log = structlog.get_logger("dmgate")

ACCOUNT_HEADER = "DMGate-Account"
# A `me` answer is one small user object.
_ME_BODY_MAX = 1024 * 1024
# A credential the platform would not identify is not asked about again for this long
# (every DM on it is held meanwhile): one lookup per minute, not one per DM.
_FAILED_LOOKUP_TTL = 60.0
_FAILED_LOOKUP_MAX = 10_000
_LEARNT_MAX = 10_000


@dataclass(frozen=True)
class Sender:
    account: str
    credential_hash: str | None
    # request | learnt | lookup | unverified (`account` is then a stand-in)
    source: str

    @property
    def verified(self) -> bool:
        return self.source != "unverified"


class SenderIdentities:
    """Identifies senders; one `whoami` lookup in flight per credential."""

    def __init__(
        self, keyring: Keyring, signals: StoreSignals, relay: Relay, metrics: Metrics, clock: Clock
    ) -> None:
        self._keyring = keyring
        self._signals = signals
        self._relay = relay
        self._metrics = metrics
        self._clock = clock
        self._learnt: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self._failed: dict[str, float] = {}  # credential hash -> monotonic time

    async def identify(
        self,
        target: Target | None,
        platform: Platform,
        call: Classified,
        hint: str | None = None,
    ) -> Sender:
        """The sending account. With `target`, an unknown credential is looked up on the
        platform (DMs); without, it stays unverified (signals: nothing waits on it)."""
        credential = platform.credential(call.request)
        cred_hash = self._keyring.credential_hash(credential) if credential else None
        sender = await self._verified(target, platform, call, cred_hash, hint)
        asserted = call.request.headers.get(ACCOUNT_HEADER, "").strip()
        if sender is None:
            standin = f"credential:{cred_hash[:16]}" if cred_hash else "anonymous"
            return Sender(asserted or standin, cred_hash, "unverified")
        if asserted and asserted != sender.account:
            self._metrics.account_header_mismatches.labels(platform.name).inc()
            log.warning(
                "account_header_mismatch",
                platform=platform.name,
                asserted=asserted[:100],
                verified=sender.account,
                hint="the DM is judged as the verified account",
            )
        return sender

    async def _verified(
        self,
        target: Target | None,
        platform: Platform,
        call: Classified,
        cred_hash: str | None,
        hint: str | None,
    ) -> Sender | None:
        named = hint or platform.account_from_request(call)
        if named:
            return Sender(named, cred_hash, "request")
        if cred_hash is None:
            return None
        known = self._learnt.get((platform.name, cred_hash))
        if known is None:
            known = await self._signals.account_for_credential(platform.name, cred_hash)
        if known:
            self._remember(platform.name, cred_hash, known)
            return Sender(known, cred_hash, "learnt")
        if target is None:
            return None
        account = await self._lookup_once(target, platform, call, cred_hash)
        if account:
            self._remember(platform.name, cred_hash, account)
        return Sender(account, cred_hash, "lookup") if account else None

    def _remember(self, platform: str, cred_hash: str, account: str) -> None:
        """A credential belongs to one account for good: once known, a DM on it costs no
        store read (most recently used kept, up to _LEARNT_MAX)."""
        key = (platform, cred_hash)
        self._learnt[key] = account
        self._learnt.move_to_end(key)
        if len(self._learnt) > _LEARNT_MAX:
            self._learnt.popitem(last=False)

    async def _lookup_once(
        self, target: Target, platform: Platform, call: Classified, cred_hash: str
    ) -> str | None:
        failed_at = self._failed.get(cred_hash)
        if failed_at is not None and self._clock.monotonic() - failed_at < _FAILED_LOOKUP_TTL:
            return None
        pending = self._inflight.get(cred_hash)
        if pending is not None:  # the same new credential sending several DMs at once
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[cred_hash] = future
        try:
            account = await self._lookup(target, platform, call, cred_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(account)
        finally:
            del self._inflight[cred_hash]
        if account is None:
            if len(self._failed) >= _FAILED_LOOKUP_MAX:
                self._failed.clear()
            self._failed[cred_hash] = self._clock.monotonic()
        else:
            self._failed.pop(cred_hash, None)
        return account

    async def _lookup(
        self, target: Target, platform: Platform, call: Classified, cred_hash: str
    ) -> str | None:
        me = platform.whoami(call)
        if me is None:
            return None
        try:
            status, facts = await ask(self._relay, target, platform, me, _ME_BODY_MAX)
        except LOOKUP_FAILURES as exc:
            log.warning("sender_lookup_failed", platform=platform.name, error=type(exc).__name__)
            return None
        account = next((f.account for f in facts if isinstance(f, Identity)), None)
        if account is None:
            log.warning("sender_not_identified", platform=platform.name, upstream_status=status)
            return None
        # Kept like an identity learnt from the tool's own `me` call: asked once.
        await self._signals.record_facts(
            platform.name, facts, self._clock.now(), cred_hash, source="lookup"
        )
        log.info("sender_identified", platform=platform.name, account=account)
        return account
