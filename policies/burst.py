"""burst: more first contacts from one account within a window than a person makes.

Automation opens conversations in bursts; people do not. The count is of distinct
recipients the account first tried to DM cold (they had not written to it) within the
window, whatever happened to those DMs (forwarded, held, blocked). Only a first contact is
caught (no DM from the account has reached the recipient yet, and the recipient never
wrote): replies and further messages in a conversation are neither counted nor caught,
and trying a blocked recipient again is caught again but not counted twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from policies.model import OutboundMessage, Signals
from policies.schema import Duration, PolicyConfig, format_duration


class BurstConfig(PolicyConfig):
    max_first_contacts: int = Field(default=20, ge=1, le=1_000_000, strict=True)
    window: Duration = timedelta(hours=1)


class Burst:
    """Matches a first contact that takes the account over `max_first_contacts` first
    contacts within `window` (this DM's included)."""

    name = "burst"
    # The proxy tells the store which DMs reached their recipients while this is on
    # (Engine.tracks_contacts): a forwarded DM ends the recipient's first contact.
    tracks_contacts = True
    config_model = BurstConfig

    def __init__(self, config: BurstConfig) -> None:
        self.config = config

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> str | None:
        limit = self.config.max_first_contacts
        history = await signals.contact_history(
            message.platform,
            message.account,
            message.recipients,
            now,
            since=now - self.config.window,
            cap=limit + 1,  # only "more than the limit" matters
        )
        if not history.first_contacts or history.recent_first_contacts <= limit:
            return None
        return (
            f"more than {limit} first contacts in "
            f"{format_duration(self.config.window, exact=True)} (this one included)"
        )
