"""Whom each account has already reached: after a DM reaches someone (forwarded, or
released on approval), the next one to them is no first contact (first_contact_pitch,
burst)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from proxy.clock import Clock
from proxy.store import StoreError

if TYPE_CHECKING:
    from proxy.policy_loader import PolicyHolder
    from proxy.store.signals import StoreSignals

log = structlog.get_logger("dmgate")


class Contacts:
    def __init__(self, policies: PolicyHolder, signals: StoreSignals, clock: Clock) -> None:
        self._policies = policies
        self._signals = signals
        self._clock = clock

    async def reached(self, platform: str, account: str, recipients: tuple[str, ...]) -> None:
        """Best effort: the DM is already sent. If the store fails, the next DM to these
        recipients is judged as a first message again (the stricter side)."""
        if not self._policies.engine.tracks_contacts:
            return
        try:
            await self._signals.contacts_reached(platform, account, recipients, self._clock.now())
        except StoreError as exc:
            log.warning("contacts_not_recorded", platform=platform, error=exc.cause)
