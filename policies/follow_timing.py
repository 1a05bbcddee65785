"""follow_timing: a DM to someone who followed the account moments ago and has not
written first — the "thanks for the follow, check out my product" auto-DM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policies.model import OutboundMessage, Signals
from policies.schema import Duration, PolicyConfig, format_duration


class FollowTimingConfig(PolicyConfig):
    window: Duration = timedelta(hours=1)


class FollowTiming:
    """Matches when any recipient followed the sending account less than `window` ago and
    has never written to the account."""

    name = "follow_timing"
    config_model = FollowTimingConfig

    def __init__(self, config: FollowTimingConfig) -> None:
        self.config = config

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> str | None:
        recent: list[tuple[str, timedelta]] = []
        for recipient in message.recipients:
            followed = await signals.followed_at(message.platform, message.account, recipient)
            if followed is None:
                continue
            if followed.tzinfo is None:
                # Stores such as SQLite hand datetimes back without a zone; they are UTC.
                followed = followed.replace(tzinfo=UTC)
            # A follow stamped slightly in the future (clocks of webhook senders) is "now".
            age = max(now - followed, timedelta(0))
            if age >= self.config.window:
                continue
            # Asked only for fresh followers: most recipients stop at the check above.
            if await signals.has_written_to(message.platform, recipient, message.account):
                continue
            recent.append((recipient, age))
        if not recent:
            return None
        first, age = recent[0]
        reason = f"recipient {first} followed {format_duration(age)} ago and has not written first"
        if len(recent) > 1:
            others = len(recent) - 1
            reason += f" (and {others} other recipient{'s' if others > 1 else ''})"
        return reason
