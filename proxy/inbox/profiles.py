"""Keeping recipients' profiles while a hold naming them waits for a reviewer."""

from __future__ import annotations

from datetime import datetime

import structlog

from proxy.context import Context
from proxy.store import StoreError

log = structlog.get_logger("dmgate.inbox")


async def keep_recipient_profiles(
    ctx: Context, platform: str, recipients: tuple[str, ...], now: datetime
) -> None:
    """Best effort: the hold is stored; a failure here only shortens how long the
    reviewer can read about its recipients."""
    try:
        await ctx.store.profiles.touch(platform, recipients, now)
    except StoreError as exc:
        log.warning("profiles_not_kept", platform=platform, error=exc.cause)
