"""One send per DM, even when the tool gives up waiting and tries again.

aiohttp does not stop a handler when its client disconnects, and it should not: the DM may
already be on its way to the platform. But a tool that timed out, or lost its connection,
retries — and without this the platform would get the DM twice. So, per sending account,
recipients and text (the hold dedupe key):

- while a send is in flight, an identical DM waits for it and gets the same answer;
- when the answer could not be delivered to the tool, it is kept for a while, and the
  tool's retry gets it instead of a second send.

An answer the tool did receive is not kept: sending the same text again later is a new
DM, for the policies to judge. The memory is per process; a retry that reaches another
replica is judged afresh.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from proxy.clock import Clock


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str | None
    headers: list[tuple[str, str]]
    body: bytes


class UnansweredSends:
    def __init__(self, clock: Clock | None = None, keep_seconds: float = 600.0) -> None:
        self._clock = clock or Clock()
        self.keep_seconds = keep_seconds
        self._in_flight: dict[str, _InFlight] = {}
        self._lost: dict[str, tuple[float, Answer]] = {}  # oldest first

    async def previous(self, key: str) -> Answer | None:
        """The answer to an identical send the tool has not received, waiting for one
        still in flight; None if there is none (then this DM is judged and sent)."""
        self._forget_old()
        lost = self._lost.pop(key, None)
        if lost is not None:
            return lost[1]
        pending = self._in_flight.get(key)
        if pending is None:
            return None
        pending.waiters += 1
        return await asyncio.shield(pending.answer)

    def begin(self, key: str) -> None:
        if key not in self._in_flight:
            self._in_flight[key] = _InFlight(asyncio.get_running_loop().create_future())

    def finish(self, key: str, answer: Answer | None, delivered: bool) -> None:
        """`answer` None: the send failed before the platform answered (waiters then
        send themselves)."""
        pending = self._in_flight.pop(key, None)
        if pending is not None and not pending.answer.done():
            pending.answer.set_result(answer)
        # A retry that waited for this send got the answer itself: nothing left to replay.
        if answer is not None and not delivered and not (pending and pending.waiters):
            self._lost[key] = (self._clock.monotonic(), answer)

    def _forget_old(self) -> None:
        cutoff = self._clock.monotonic() - self.keep_seconds
        while self._lost:
            key, (at, _) = next(iter(self._lost.items()))
            if at >= cutoff:
                break
            del self._lost[key]


@dataclass
class _InFlight:
    answer: asyncio.Future[Answer | None]
    waiters: int = 0
