"""One send per DM: in-flight and undelivered answers are given to retries."""

from __future__ import annotations

import asyncio

from proxy.clock import ManualClock
from proxy.unanswered import Answer, UnansweredSends

ANSWER = Answer(201, "Created", [("Content-Type", "application/json")], b'{"data": {}}')


async def test_nothing_to_replay_for_a_new_dm():
    assert await UnansweredSends().previous("k") is None


async def test_a_retry_while_the_send_is_in_flight_gets_its_answer():
    sends = UnansweredSends()
    sends.begin("k")
    retry = asyncio.create_task(sends.previous("k"))
    await asyncio.sleep(0)  # the retry is now waiting
    assert not retry.done()
    sends.finish("k", ANSWER, delivered=False)
    assert await retry == ANSWER
    # The waiting retry took the answer: nothing is left for a third attempt.
    assert await sends.previous("k") is None


async def test_an_undelivered_answer_is_replayed_once():
    sends = UnansweredSends()
    sends.begin("k")
    sends.finish("k", ANSWER, delivered=False)
    assert await sends.previous("k") == ANSWER
    assert await sends.previous("k") is None


async def test_a_delivered_answer_is_not_kept():
    sends = UnansweredSends()
    sends.begin("k")
    sends.finish("k", ANSWER, delivered=True)
    assert await sends.previous("k") is None


async def test_a_failed_send_lets_waiters_send_themselves():
    sends = UnansweredSends()
    sends.begin("k")
    retry = asyncio.create_task(sends.previous("k"))
    await asyncio.sleep(0)
    sends.finish("k", None, delivered=False)
    assert await retry is None


async def test_old_answers_are_forgotten():
    clock = ManualClock()
    sends = UnansweredSends(clock, keep_seconds=600)
    sends.begin("k")
    sends.finish("k", ANSWER, delivered=False)
    sends.begin("j")
    sends.finish("j", ANSWER, delivered=False)
    clock.advance(599)
    assert await sends.previous("k") == ANSWER  # still kept (and now taken)
    clock.advance(2)
    assert await sends.previous("j") is None
