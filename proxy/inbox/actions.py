"""The one door from the review inbox (and the campaign endpoint) to the hold state
machine. Everything that decides a hold goes through here, so the hold service has one
caller to repoint."""

from __future__ import annotations

from typing import Any

import structlog

from proxy import holds
from proxy.context import Context
from proxy.errors import Conflict, NotFound

log = structlog.get_logger("dmgate.inbox")


async def approve(
    ctx: Context, hold_id: str, by: str, text: str | None, note: str | None = None
) -> dict[str, Any]:
    """Send exactly once (raises Conflict if decided or being released)."""
    return await holds.approve(ctx, hold_id, by, text, note)


async def reject(
    ctx: Context, hold_id: str, by: str, reason: str, note: str | None = None
) -> dict[str, Any]:
    return await holds.reject(ctx, hold_id, by, reason, note)


async def reject_campaign(
    ctx: Context, template_id: str, by: str, reason: str, note: str | None = None
) -> int:
    """Reject every pending copy of one campaign; the number rejected. Copies another
    reviewer decided meanwhile are skipped."""
    rejected = 0
    for hold_id in await ctx.store.inbox.pending_ids(template_id):
        try:
            await holds.reject(ctx, hold_id, by, reason, note)
        except (Conflict, NotFound):
            continue
        rejected += 1
    log.info("campaign_rejected", template_id=template_id, rejected=rejected, decided_by=by)
    return rejected
