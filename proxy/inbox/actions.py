"""The one door from the review inbox (and the campaign endpoint) to the hold state
machine (`proxy.holds.HoldService`). Everything that decides a hold goes through here."""

from __future__ import annotations

import structlog

from proxy.errors import NotFound
from proxy.holds import HoldNotPending, HoldService
from proxy.store import Store
from proxy.store.database import Row

log = structlog.get_logger("dmgate.inbox")


async def approve(
    holds: HoldService, hold_id: str, by: str, text: str | None, note: str | None = None
) -> Row:
    """Send exactly once (raises HoldNotPending if decided or being released)."""
    return await holds.approve(hold_id, by, text, note)


async def reject(
    holds: HoldService, hold_id: str, by: str, reason: str, note: str | None = None
) -> Row:
    return await holds.reject(hold_id, by, reason, note)


async def reject_campaign(
    holds: HoldService,
    store: Store,
    template_id: str,
    by: str,
    reason: str,
    note: str | None = None,
) -> int:
    """Reject every pending copy of one campaign; the number rejected. Copies another
    reviewer decided meanwhile are skipped."""
    rejected = 0
    for hold_id in await store.inbox.pending_ids(template_id):
        try:
            await holds.reject(hold_id, by, reason, note)
        except (HoldNotPending, NotFound):
            continue
        rejected += 1
    log.info("campaign_rejected", template_id=template_id, rejected=rejected, decided_by=by)
    return rejected
