"""The same DMs through a live `dmgate serve` and through `dmgate simulate` get the same
decisions, DM by DM: simulate is the serve's engine and store on a replayed clock, not a
second implementation.

Serve has no injectable clock yet, so the DMs are sent in real time and their send times
replayed: every policy window here is minutes to hours, and the whole exchange takes
seconds. Follows are reported with explicit times (`followed_at`), so "followed 5 minutes
ago" means the same to both."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxy.backtest.accounts import Accounts
from proxy.backtest.inputs import Participants, read
from proxy.backtest.replay import StoreJudge, replay
from proxy.backtest.spool import Spool
from tests.integration.dm_helpers import SENDER, learn_identity, send_dm
from tests.support import DMGate

POLICY = """
mode: enforce
policies:
  follow_timing: {action: hold, window: 1h}
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
  first_contact_pitch: {action: block, match: link_or_cta}
"""
PITCH = (
    "Hi there, we just launched Rocketly for founders, join 5,000 others: https://rk.example/{n}"
)


async def test_serve_and_simulate_decide_every_dm_alike(
    dmgate_factory: Callable[..., DMGate], tmp_path: Path
) -> None:
    gate = dmgate_factory(policy_yaml=POLICY)
    learn_identity(gate.client)
    now = datetime.now(UTC)
    history: list[dict[str, object]] = []
    follows = {"201": now - timedelta(minutes=5), "202": now - timedelta(hours=3)}
    with gate.review() as review:
        for follower, at in follows.items():
            r = review.post(
                "/api/v1/follow-events",
                json={
                    "platform": "x",
                    "account": SENDER,
                    "follower": follower,
                    "followed_at": at.isoformat().replace("+00:00", "Z"),
                },
            )
            assert r.status_code in (200, 201, 202, 204), r.text
            history.append(
                {"time": at.isoformat(), "account": SENDER, "recipient": follower, "kind": "follow"}
            )
    dms = [
        ("201", "Thanks for following, great to meet you here and hope your week goes well"),
        ("202", "Thanks for following, great to meet you here and hope your week goes well"),
        ("301", PITCH.format(n=1)),  # a link in a first message: first_contact_pitch
        ("302", "Hello! Loved your talk on distributed systems yesterday, it was inspiring"),
        ("302", "Also, the slides are at https://slides.example/talk if you want them"),
        ("303", PITCH.format(n=2)),
        ("304", PITCH.format(n=3)),
        ("201", "One more thing: happy to share notes from the meetup whenever you like"),
    ]
    served = []
    for recipient, text in dms:
        at = datetime.now(UTC)
        answer = send_dm(gate.client, recipient, text)
        assert answer.status_code in (201, 403), answer.text
        served.append(answer.headers["DMGate-Decision"])
        history.append(
            {"time": at.isoformat(), "account": SENDER, "recipient": recipient, "text": text}
        )
    assert set(served) == {"allow", "hold", "block"}  # the scenario exercises all three

    export = tmp_path / "history.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in history))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    spool = Spool(tmp_path)
    participants = Participants()
    for record in read(export, participants):
        spool.add(record)
    spool.sealed()
    (tmp_path / "run0").mkdir()
    judge = await StoreJudge.open(policy, tmp_path / "run0")
    try:
        await replay(spool, [judge], Accounts.decide(None, participants))
    finally:
        await judge.close()
    spool.finished()
    simulated = [taken for _would, taken in spool.decisions(0)]
    spool.close()
    assert simulated == served
