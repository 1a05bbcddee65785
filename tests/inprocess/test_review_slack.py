"""Review notifications people read: Slack Block Kit messages (one per campaign per
minute), and reminders for holds nobody decided (once per hold per interval), with a
clock the test controls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.clock import ManualClock
from proxy.inbox import slack
from proxy.notify import minute_end
from tests.inprocess.conftest import Gate
from tests.inprocess.dm import learn_identity, send_dm
from tests.integration.dm_helpers import SENDER, bearer

POLICY = """
mode: enforce
policies:
  follow_timing:
    action: hold
    window: 1h
  template_reuse:
    action: hold
    min_recipients: 3
    window: 24h
"""
PITCH = "Hey {n}, I built Launchpad for teams like yours. Demo: https://lp.example/{n}"


class FakeSlack:
    """An incoming-webhook endpoint: keeps every message, answers "ok" like Slack."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()

        async def hook(request: web.Request) -> web.Response:
            self.messages.append(await request.json())
            return web.Response(text="ok")

        app.router.add_post("/services/T000/B000/XXX", hook)
        return app


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """Block Kit's documented limits, checked independently of proxy.inbox.slack."""
    problems = []
    blocks = message["blocks"]
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    if not message.get("text") or len(message["text"]) > 40000:
        problems.append("fallback text")
    for b in blocks:
        if b["type"] == "header" and len(b["text"]["text"]) > 150:
            problems.append("header over 150")
        if b["type"] == "section" and len(b["text"]["text"]) > 3000:
            problems.append("section over 3000")
        if b["type"] == "context" and len(b["elements"]) > 10:
            problems.append("context over 10 elements")
        if "accessory" in b and len(b["accessory"]["text"]["text"]) > 75:
            problems.append("button text over 75")
    return problems


@pytest.fixture
async def slack_hook(fake_factory):
    return await fake_factory(FakeSlack())


START = datetime(2026, 12, 7, 9, 0, 10, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def quiet_notifier() -> None:
    """The test is the clock and calls the notifier itself: dmgate's own delivery loop
    stays out of the way."""
    for task in asyncio.all_tasks():
        if task.get_name() == "notify":
            task.cancel()


@pytest.fixture
async def gate(gate_factory, slack_hook, fake_x, clock) -> Gate:
    for i in range(60):
        fake_x.state.add_user(str(500 + i), username=f"lead{i}", name=f"Lead {i}")
    gate = await gate_factory(
        clock=clock,
        env={
            "DMGATE_REVIEW_WEBHOOK_URL": f"{slack_hook.url}/services/T000/B000/XXX",
            "DMGATE_REVIEW_NOTIFY": "slack",
            "DMGATE_PUBLIC_URL": "https://dmgate.example",
            "DMGATE_REVIEW_REMINDER": "4h",
        },
        policy_yaml=POLICY,
    )
    quiet_notifier()
    await learn_identity(gate.client)
    return gate


async def test_forty_copies_of_a_campaign_are_one_message_per_minute(
    gate, slack_hook, fake_x, clock
):
    fake_x.state.followers[SENDER] = [str(500 + i) for i in range(60)]
    r = await gate.client.get(f"/x/2/users/{SENDER}/followers", headers=bearer())
    assert r.status_code == 200  # dmgate learns their profiles (a first list: no timing)
    held = []
    for i in range(42):
        r = await send_dm(gate.client, str(500 + i), PITCH.format(n=i) + " " + "x" * 20)
        if r.headers["DMGate-Decision"] == "hold":
            held.append(r.headers["DMGate-Hold-Id"])
    assert len(held) == 40
    notifier = gate.ctx.notifier
    async with aiohttp.ClientSession() as session:
        clock.advance(20)
        await notifier.deliver_once(session)  # 09:00:30: the minute is not over, wait
        assert slack_hook.state.messages == []
        clock.set(minute_end(START) + timedelta(seconds=1))
        await notifier.deliver_once(session)
        clock.advance(300)
        await notifier.deliver_once(session)
    [message] = slack_hook.state.messages  # one per campaign per minute, not 40
    assert block_kit_problems(message) == []
    assert slack.check_limits(message) == []
    assert message["blocks"][0]["text"]["text"].startswith(f"40 held DMs from {SENDER}")
    assert len(message["blocks"]) == 1 + 1 + slack.MAX_LISTED + 1 + 1  # "and 30 more"
    text = str(message)
    assert "https://dmgate.example/review/holds/" in text
    assert "*To:* Lead 2 (@lead2)" in text, text  # as seen in the follower list


async def test_one_hold_is_announced_at_once_with_who_whom_why_text_and_link(
    gate, slack_hook, fake_x
):
    fake_x.state.users["510"]["description"] = "Designer"
    await gate.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "510"}
    )
    fake_x.state.followers[SENDER] = ["510"]
    r = await gate.client.get(f"/x/2/users/{SENDER}/followers", headers=bearer())
    assert r.status_code == 200
    r = await send_dm(gate.client, "510", "Thanks for the follow <!channel> *buy* now")
    hold_id = r.headers["DMGate-Hold-Id"]
    async with aiohttp.ClientSession() as session:
        await gate.ctx.notifier.deliver_once(session)  # a single hold: at once
    [message] = slack_hook.state.messages
    assert block_kit_problems(message) == []
    [header, section, context] = message["blocks"]
    assert header["text"]["text"] == f"Held DM from {SENDER} to Lead 10 (@lead10)"
    body = section["text"]["text"]
    assert "*To:* Lead 10 (@lead10)" in body
    assert "*Why:* Recipient @lead10 followed" in body
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body  # no @channel from a DM
    assert section["accessory"]["url"] == f"https://dmgate.example/review/holds/{hold_id}"
    assert context["elements"][0]["text"].startswith("x")


async def test_huge_text_still_fits_block_kit(gate):
    hold = {
        "id": "0" * 32,
        "account": "a" * 500,
        "platform": "x",
        "recipients": ["1"],
        "text": "word " * 5000,
        "policies": [{"policy": "template_reuse", "reason": "r" * 5000}],
        "recipient_profiles": [{"id": "1", "name": "N" * 3000, "username": "u"}],
    }
    for holds in ([hold], [hold] * 60):
        for reminder in (False, True):
            message = slack.message(holds, "https://dmgate.example/" + "p" * 100, reminder)
            assert slack.check_limits(message) == []
            assert block_kit_problems(message) == []


async def test_reminders_once_per_hold_per_interval_whoever_asks(gate, slack_hook, clock):
    await gate.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "520"}
    )
    r = await send_dm(gate.client, "520", "Thanks for the follow! Check out Launchpad")
    hold_id = r.headers["DMGate-Hold-Id"]
    created = (await gate.ctx.store.holds.get(hold_id))["created_at"]
    notifier = gate.ctx.notifier
    async with aiohttp.ClientSession() as session:
        clock.advance(1)
        await notifier.deliver_once(session)
        assert len(slack_hook.state.messages) == 1  # the announcement

        clock.set(created + timedelta(hours=3))
        assert await notifier.schedule_reminders() == 0
        clock.set(created + timedelta(hours=4, seconds=30))
        # Replicas sweeping at the same moment: one reminder between them.
        added = await asyncio.gather(*(notifier.schedule_reminders() for _ in range(4)))
        assert sum(added) == 1
        clock.advance(60)
        assert await notifier.schedule_reminders() == 0
        await asyncio.gather(*(notifier.deliver_once(session) for _ in range(3)))
        assert len(slack_hook.state.messages) == 2
        reminder = slack_hook.state.messages[1]
        assert reminder["blocks"][0]["text"]["text"] == "1 held DM still waiting for review"
        assert block_kit_problems(reminder) == []

        clock.set(created + timedelta(hours=8, seconds=10))
        assert await notifier.schedule_reminders() == 1
        await notifier.deliver_once(session)
        assert len(slack_hook.state.messages) == 3

        # Decided: no more reminders go out.
        await gate.review().post(f"/api/v1/holds/{hold_id}/reject", json={"reason": "no"})
        clock.set(created + timedelta(hours=12, seconds=10))
        await notifier.schedule_reminders()
        await notifier.deliver_once(session)
        assert len(slack_hook.state.messages) == 3


class FakeReceiver:
    """The signed JSON webhook's receiver: keeps headers and bodies."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []

    def app(self) -> web.Application:
        app = web.Application()

        async def hook(request: web.Request) -> web.Response:
            self.calls.append((dict(request.headers), await request.json()))
            return web.Response(status=204)

        app.router.add_post("/hook", hook)
        return app


async def test_json_webhook_reminders_are_signed_hold_reminder_events(
    gate_factory, fake_factory, fake_x
):
    receiver = await fake_factory(FakeReceiver())
    fake_x.state.add_user("530")
    clock = ManualClock(START)
    gate = await gate_factory(
        clock=clock,
        env={
            "DMGATE_REVIEW_WEBHOOK_URL": f"{receiver.url}/hook",
            "DMGATE_REVIEW_WEBHOOK_SECRET": "s3cret-for-the-hook",
            "DMGATE_REVIEW_REMINDER": "1h",
        },
        policy_yaml=POLICY,
    )
    quiet_notifier()
    await learn_identity(gate.client)
    await gate.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "530"}
    )
    r = await send_dm(gate.client, "530", "Thanks for the follow!")
    hold_id = r.headers["DMGate-Hold-Id"]
    clock.advance(timedelta(hours=1, seconds=5))
    async with aiohttp.ClientSession() as session:
        assert await gate.ctx.notifier.schedule_reminders() == 1
        await gate.ctx.notifier.deliver_once(session)
    events = [(h["DMGate-Event"], body) for h, body in receiver.state.calls]
    assert [e for e, _ in events] == ["hold.created", "hold.reminder"]
    reminder_headers, reminder = receiver.state.calls[1]
    assert reminder["hold"]["id"] == hold_id and reminder["hold"]["history"]
    assert reminder_headers["DMGate-Signature"].startswith("sha256=")
