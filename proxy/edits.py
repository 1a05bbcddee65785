"""Edits of sent messages: what dmgate remembers of the DMs it let through, and what it
asks the platform about the messages it never saw sent.

An edit of a direct message is a new DM to its recipients (a Mastodon direct status edited
into a pitch). The adapter says a send is an edit (`ParsedDM.edit_of`); this part says
whether the edited message is direct:

1. dmgate saw it created: the platform's answer to the send named its id
   (`Platform.learn_sent`, kept as a `SentMessage` fact, pruned by retention like every
   fact), or a read of it passed through (the adapter's signal);
2. else the platform is asked, once per edit, with the tool's own credential
   (`Platform.edited_lookup`), as `proxy.identity` asks "who am I";
3. else (the platform did not answer, or not with the message) the edit fails closed:
   `EditNotJudged` (502), never forwarded. Refusing rather than holding: the tool hears at
   once that nothing was sent and may retry, and no reviewer is asked about an edit whose
   recipients and visibility nobody knows.
"""

from __future__ import annotations

import structlog

from proxy.clock import Clock
from proxy.errors import DMGateError, EditNotJudged
from proxy.facts import SentMessage
from proxy.lookups import LOOKUP_FAILURES, ask
from proxy.platforms.base import Classified, Platform
from proxy.refusals import decoded_body
from proxy.relay import Relay
from proxy.routing import Target
from proxy.store import StoreError
from proxy.store.signals import StoreSignals

log = structlog.get_logger("dmgate")

# The answer to a read of one message.
_LOOKUP_BODY_MAX = 1024 * 1024
# Answers to a send bigger than this (decoded) teach nothing.
_SENT_BODY_MAX = 8 * 1024 * 1024


class SentMessages:
    """Remembers the direct messages sent through dmgate and answers, for an edit, whether
    the edited message is one."""

    def __init__(self, signals: StoreSignals, relay: Relay, clock: Clock) -> None:
        self._signals = signals
        self._relay = relay
        self._clock = clock

    async def learn_sent(
        self,
        platform: Platform,
        call: Classified,
        account: str,
        status: int,
        body: bytes,
        content_encoding: str | None,
    ) -> None:
        """Keep what the platform's answer to a forwarded or released send teaches (a direct
        status's id). Best effort: the send is done, the tool must hear its answer."""
        if not platform.learns_from_sends or not 200 <= status < 300:
            return
        try:
            readable = decoded_body(body, content_encoding, _SENT_BODY_MAX)
        except DMGateError:
            return
        facts = platform.learn_sent(call, account, status, readable)
        if not facts:
            return
        try:
            await self._signals.record_facts(platform.name, facts, self._clock.now())
        except StoreError as exc:
            log.warning("sent_message_not_recorded", platform=platform.name, error=exc.cause)

    async def edited(
        self, target: Target, platform: Platform, call: Classified, account: str, message_id: str
    ) -> SentMessage:
        """The message an edit changes: remembered, or as the platform describes it. Raises
        `EditNotJudged` when neither can say."""
        recipients = await self._signals.sent_direct(platform.name, account, message_id)
        if recipients is not None:
            return SentMessage(account, message_id, recipients, direct=True)
        asked = await self._ask(target, platform, call, message_id)
        if asked is None:
            raise EditNotJudged(
                f"{platform.name}: dmgate does not know whether message {message_id} is a "
                "direct message and the platform would not say; the edit was not forwarded "
                "(retry it)"
            )
        return asked

    async def _ask(
        self, target: Target, platform: Platform, call: Classified, message_id: str
    ) -> SentMessage | None:
        view = platform.edited_lookup(call, message_id)
        if view is None:
            return None
        try:
            status, facts = await ask(self._relay, target, platform, view, _LOOKUP_BODY_MAX)
        except LOOKUP_FAILURES as exc:
            log.warning("edited_lookup_failed", platform=platform.name, error=type(exc).__name__)
            return None
        found = next(
            (f for f in facts if isinstance(f, SentMessage) and f.message_id == message_id), None
        )
        if found is None:
            log.warning("edited_message_unknown", platform=platform.name, upstream_status=status)
            return None
        # Kept like a create seen passing (only direct ones are): asked once.
        await self._signals.record_facts(platform.name, facts, self._clock.now(), source="lookup")
        return found
