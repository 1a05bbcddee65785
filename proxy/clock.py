"""The one source of time for everything dmgate decides: hold expiry, policy windows,
retention, retries, notification backoff.

`Clock` reads the system's clocks. `ManualClock` is set by its owner: tests advance it
instead of sleeping, and `dmgate simulate` sets it to each replayed message's time. Code
that waits for time to pass waits through `Clock.sleep`, so a manual clock's `advance`
wakes it. Durations that are measured rather than decided (latency metrics) use
`time.perf_counter` directly: no test needs to control them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time (aware, UTC) and a monotonic clock for intervals."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`; True if it was set."""
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


class ManualClock(Clock):
    """Time that moves only when told to. Sleepers wake when it has moved far enough."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._mono = 0.0
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, by: float | timedelta) -> None:
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def set(self, when: datetime) -> None:
        """Move to `when` (never backwards: an earlier time is ignored)."""
        if when > self._now:
            self.advance(when - self._now)

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + seconds
        while self._mono < deadline:
            await self._moved.wait()

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        deadline = self._mono + seconds
        while not event.is_set() and self._mono < deadline:
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()
        return event.is_set()
