"""Replay: sent DMs judged in time order by the real engine on a real (ephemeral) store,
with the clock at each message's time; received messages and follows become facts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from policies.model import Decision, OutboundMessage
from proxy.backtest.accounts import AccountError, Accounts
from proxy.backtest.inputs import Participants, read
from proxy.backtest.replay import StoreJudge, replay
from proxy.backtest.report import as_json, render_html, summarise
from proxy.backtest.spool import Spool
from proxy.facts import Fact
from tests.support import REPO

FIXTURES = REPO / "tests" / "fixtures"
DEFAULT = REPO / "policies" / "default.yaml"
OWNER = "1460001111222333444"


def policy_file(tmp_path: Path, name: str, edits: dict[str, str]) -> Path:
    text = DEFAULT.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


async def simulate(
    tmp_path: Path, inputs: list[Path], policies: list[Path], account: str | None = None
):
    spool = Spool(tmp_path)
    participants = Participants()
    for path in inputs:
        for record in read(path, participants):
            spool.add(record)
    spool.sealed()
    accounts = Accounts.decide(account, participants)
    judges = []
    for i, p in enumerate(policies):
        (tmp_path / f"run{i}").mkdir()
        judges.append(await StoreJudge.open(p, tmp_path / f"run{i}"))
    try:
        tally = await replay(spool, judges, accounts)
    finally:
        for judge in judges:
            await judge.close()
    spool.finished()
    summary = summarise(spool, tally, [str(p) for p in policies], [str(p) for p in inputs])
    return spool, summary


async def test_x_archive_template_campaign_is_held_from_the_third_recipient(tmp_path: Path) -> None:
    spool, summary = await simulate(
        tmp_path,
        [
            FIXTURES / "x-archive" / "direct-messages.js",
            FIXTURES / "x-archive" / "direct-messages-group.js",
        ],
        [DEFAULT],
    )
    run = summary.runs[0]
    assert summary.tally.sent == 8 and summary.tally.received == 4
    assert run.counts == {"allow": 5, "hold": 3, "block": 0}
    held = [r for r in run.flagged]
    # Mara and Jonas got the pitch first; Priya is the third recipient within 24 h.
    assert held[0]["recipients"] == ["1460001111222333503"]
    assert all(r["policies"] == ["template_reuse"] for r in held)
    # The reply to Lena (she wrote first) and the follow-up are personal: allowed.
    assert summary.campaigns[0]["recipients"] == 6
    assert as_json(summary)["messages"] == 8
    spool.close()


async def test_follow_timing_uses_follow_and_received_facts_from_generic_input(
    tmp_path: Path,
) -> None:
    spool, summary = await simulate(tmp_path, [FIXTURES / "generic" / "history.jsonl"], [DEFAULT])
    flagged = {tuple(r["recipients"]): r for r in summary.runs[0].flagged}
    # Followed 3 and 1.5 minutes before the DM: held.
    assert "follow_timing" in flagged[("u101",)]["policies"]
    assert "follow_timing" in flagged[("u102",)]["policies"]
    # 3.5 hours / 2 days after the follow: outside the 1 h window.
    assert "follow_timing" not in flagged.get(("u103",), {"policies": []})["policies"]
    assert ("u104",) not in flagged or "follow_timing" not in flagged[("u104",)]["policies"]
    # u105 followed, then wrote first: the answer a minute later is no auto-DM.
    assert ("u105",) not in flagged
    histogram = dict(summary.follow_to_dm)
    assert histogram["1-5 min"] == 2 and histogram["< 1 min"] == 0  # u101 3m10s, u102 1m30s
    assert (
        histogram["1-5 min"] + histogram["1-6 h"] + histogram["1-7 days"] + histogram["< 1 min"]
        >= 4
    )
    spool.close()


async def test_shadow_mode_counts_what_would_have_happened(tmp_path: Path) -> None:
    shadow = policy_file(tmp_path, "shadow.yaml", {"\nmode: enforce": "\nmode: shadow"})
    spool, summary = await simulate(tmp_path, [FIXTURES / "generic" / "history.jsonl"], [shadow])
    run = summary.runs[0]
    assert run.counts["hold"] >= 2
    assert run.taken == {"allow": summary.tally.sent, "hold": 0, "block": 0}
    assert as_json(summary)["shadow"] is True
    spool.close()


async def test_compare_min_recipients_shows_what_changes(tmp_path: Path) -> None:
    five = policy_file(tmp_path, "five.yaml", {"min_recipients: 3 ": "min_recipients: 5 "})
    spool, summary = await simulate(
        tmp_path,
        [
            FIXTURES / "x-archive" / "direct-messages.js",
            FIXTURES / "x-archive" / "direct-messages-group.js",
        ],
        [DEFAULT, five],
    )
    before, after = summary.runs
    assert before.policies["template_reuse"]["hold"] == 3
    # Priya (3rd recipient) and Tomas (4th) pass; the group pitch reaches the 5th (Lena).
    assert after.policies["template_reuse"]["hold"] == 1
    assert summary.changes_total == 2
    assert {(c["before"], c["after"]) for c in summary.changes} == {("hold", "allow")}
    out = as_json(summary)
    assert out["compare"]["changed"] == 2 and out["compare"]["policies"] == {"template_reuse": 1}
    spool.close()


async def test_the_archive_owner_must_be_unambiguous(tmp_path: Path) -> None:
    one = tmp_path / "direct-messages.js"
    text = (FIXTURES / "x-archive" / "direct-messages.js").read_text()
    # Only the first conversation: both of its participants are in every conversation.
    end = text.index('  {\n    "dmConversation"', 40)
    one.write_text(text[:end].rstrip().rstrip(",") + "\n]\n")
    with pytest.raises(AccountError, match="--account"):
        await simulate(tmp_path, [one], [DEFAULT])
    (tmp_path / "again").mkdir()
    spool, summary = await simulate(
        tmp_path / "again", [one], [DEFAULT], account="1460001111222333501"
    )
    assert summary.tally.sent == 1 and summary.tally.received == 1
    spool.close()


async def test_the_judge_sees_messages_in_time_order_at_their_own_time(tmp_path: Path) -> None:
    """The seam: a Judge gets each sent DM with the virtual clock at its time, facts first."""

    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, datetime, object]] = []

        async def judge(self, message: OutboundMessage, at: datetime) -> Decision:
            self.calls.append(("judge", at, message.recipients))
            return Decision.of([])

        async def delivered(self, message: OutboundMessage, at: datetime) -> None:
            self.calls.append(("delivered", at, message.recipients))

        async def learn(self, platform: str, facts: list[Fact], at: datetime) -> None:
            self.calls.append(("learn", at, tuple(type(f).__name__ for f in facts)))

        async def close(self) -> None:
            pass

    spool = Spool(tmp_path)
    participants = Participants()
    for record in read(FIXTURES / "x-archive" / "direct-messages.js", participants):
        spool.add(record)
    spool.sealed()
    judge = Recording()
    await replay(spool, [judge], Accounts.decide(None, participants))
    times = [at for _, at, _ in judge.calls]
    assert times == sorted(times)
    kinds = [kind for kind, _, _ in judge.calls]
    assert kinds.count("judge") == 7 and kinds.count("delivered") == 7
    assert ("learn", times[kinds.index("learn")], ("InboundMessage",)) in judge.calls
    spool.close()


async def test_html_report_escapes_every_text(tmp_path: Path) -> None:
    hostile = tmp_path / "h.jsonl"
    evil = '<img src=x onerror=alert(1)> "quoted" & </script><script>alert(2)</script>'
    lines = [
        {
            "time": f"2025-01-01T00:0{i}:00Z",
            "account": "a<b>",
            "recipient": f"r{i}<i>",
            "text": evil + " buy now at our shop today friend",
        }
        for i in range(4)
    ]
    hostile.write_text("".join(json.dumps(line) + "\n" for line in lines))
    spool, summary = await simulate(tmp_path, [hostile], [DEFAULT])
    html = render_html(summary)
    assert "<img src=x" not in html and "<script>alert" not in html and "r0<i>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("<script>") == 1  # the report's own search
    assert "Content-Security-Policy" in html
    spool.close()
