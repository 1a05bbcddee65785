"""The engine: which policies run, how their actions combine, what a Decision says."""

from __future__ import annotations

import hashlib
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from policies.config import PoliciesSection, PolicyFile, PolicyFileError, parse_policies
from policies.engine import Engine
from policies.model import Action, Decision, Mode, OutboundMessage, PolicyMatch
from policies.registry import POLICY_TYPES
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TEMPLATE = "Thanks for the follow! We help small shops double their sales, see {}"


def engine(policies: dict[str, Any], mode: str = "enforce", version: str = "") -> Engine:
    return Engine(PolicyFile.model_validate({"mode": mode, "policies": policies}), version)


def fresh_follower_signals() -> MemorySignals:
    """r1..r3 followed a minute ago, so follow_timing matches any of them."""
    signals = MemorySignals()
    for recipient in ("r1", "r2", "r3"):
        signals.follow("x", "acct", recipient, NOW - timedelta(minutes=1))
    return signals


async def send_template(
    eng: Engine, signals: MemorySignals, recipients: tuple[str, ...] = ("r1", "r2", "r3")
) -> list[Decision]:
    """The same template to each recipient in turn; the last one reaches min_recipients 3."""
    decisions = []
    for recipient in recipients:
        message = OutboundMessage(
            "x", "acct", (recipient,), TEMPLATE.format(f"https://shop.example/{recipient}")
        )
        decisions.append(await eng.evaluate(message, signals, NOW))
    return decisions


def test_every_registered_policy_has_its_section_in_the_policy_file():
    sections = {
        name: typing.get_args(field.annotation)[0]
        for name, field in PoliciesSection.model_fields.items()
    }
    assert sections == {p.name: p.config_model for p in POLICY_TYPES}


async def test_no_match_allows():
    eng = engine({"follow_timing": {"action": "block"}})
    message = OutboundMessage("x", "acct", ("stranger",), "hello there")
    decision = await eng.evaluate(message, MemorySignals(), NOW)
    assert decision.action is Action.ALLOW
    assert decision.would_action is Action.ALLOW
    assert decision.matches == ()
    assert decision.shadow is False


async def test_strictest_action_wins():
    eng = engine({"follow_timing": {"action": "block"}, "template_reuse": {"action": "hold"}})
    *_, third = await send_template(eng, fresh_follower_signals())
    assert [(m.policy, m.action) for m in third.matches] == [
        ("follow_timing", Action.BLOCK),
        ("template_reuse", Action.HOLD),
    ]
    assert third.action is Action.BLOCK
    assert third.would_action is Action.BLOCK
    assert third.shadow is False


async def test_only_matching_policies_decide():
    eng = engine({"follow_timing": {"action": "hold"}, "template_reuse": {"action": "block"}})
    first, *_ = await send_template(eng, fresh_follower_signals())
    # The first copy matches follow_timing only: template_reuse's block does not apply.
    assert [m.policy for m in first.matches] == ["follow_timing"]
    assert first.action is Action.HOLD


async def test_reasons_are_prefixed_with_the_policy_name():
    eng = engine({"follow_timing": {"action": "hold"}, "template_reuse": {"action": "hold"}})
    *_, third = await send_template(eng, fresh_follower_signals())
    assert third.matches[0].reason == (
        "follow_timing: recipient r3 followed 1m ago and has not written first"
    )
    assert third.matches[1].reason.startswith("template_reuse: same text sent to at least 3")


async def test_per_policy_shadow_only_observes_while_others_enforce():
    eng = engine(
        {
            "follow_timing": {"action": "block", "mode": "shadow"},
            "template_reuse": {"action": "hold"},
        }
    )
    *_, third = await send_template(eng, fresh_follower_signals())
    assert third.action is Action.HOLD  # only template_reuse is enforced
    assert third.would_action is Action.BLOCK
    assert third.shadow is True
    assert [m.mode for m in third.matches] == [Mode.SHADOW, Mode.ENFORCE]
    assert [m.policy for m in third.enforced] == ["template_reuse"]


async def test_global_shadow_mode_applies_to_policies_without_their_own_mode():
    eng = engine({"follow_timing": {"action": "hold"}}, mode="shadow")
    first, *_ = await send_template(eng, fresh_follower_signals())
    assert first.action is Action.ALLOW
    assert first.would_action is Action.HOLD
    assert first.shadow is True
    assert first.matches == (
        PolicyMatch(
            "follow_timing",
            Action.HOLD,
            Mode.SHADOW,
            "follow_timing: recipient r1 followed 1m ago and has not written first",
        ),
    )


async def test_a_policy_can_enforce_under_a_global_shadow_mode():
    eng = engine(
        {
            "follow_timing": {"action": "block"},
            "template_reuse": {"action": "hold", "mode": "enforce"},
        },
        mode="shadow",
    )
    *_, third = await send_template(eng, fresh_follower_signals())
    assert third.action is Action.HOLD
    assert third.would_action is Action.BLOCK
    assert third.shadow is True


async def test_shadow_is_false_when_the_enforced_action_is_as_strict():
    eng = engine(
        {
            "follow_timing": {"action": "hold", "mode": "shadow"},
            "template_reuse": {"action": "hold"},
        }
    )
    *_, third = await send_template(eng, fresh_follower_signals())
    assert third.action is Action.HOLD
    assert third.would_action is Action.HOLD
    assert third.shadow is False


async def test_off_policies_are_not_evaluated():
    loaded = parse_policies(
        "policies:\n  follow_timing:\n    action: off\n  template_reuse:\n    action: off\n"
    )
    eng = Engine.from_loaded(loaded)
    signals = fresh_follower_signals()
    decisions = await send_template(eng, signals)
    assert eng.active == ()
    assert signals.calls == []
    assert all(d.matches == () and d.action is Action.ALLOW for d in decisions)


async def test_absent_policies_are_not_evaluated():
    eng = engine({"template_reuse": {"action": "hold"}})
    signals = fresh_follower_signals()
    await send_template(eng, signals)
    assert [p.name for p in eng.active] == ["template_reuse"]
    assert "followed_at" not in signals.calls
    assert signals.calls.count("template_recipients") == 3


async def test_every_policy_runs_even_after_a_block():
    # template_reuse records each attempt; a block by follow_timing must not hide it.
    eng = engine({"follow_timing": {"action": "block"}, "template_reuse": {"action": "hold"}})
    signals = fresh_follower_signals()
    decisions = await send_template(eng, signals)
    assert all(d.action is Action.BLOCK for d in decisions)
    assert signals.calls.count("template_recipients") == 3
    assert [m.policy for m in decisions[2].matches] == ["follow_timing", "template_reuse"]


async def test_a_failing_signal_propagates_so_the_proxy_fails_closed():
    class StoreDown(MemorySignals):
        async def template_campaign(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("store unavailable")

    eng = engine({"template_reuse": {"action": "hold"}})
    with pytest.raises(ConnectionError):
        await send_template(eng, StoreDown())


async def test_naive_now_is_refused():
    eng = engine({"follow_timing": {"action": "hold"}})
    message = OutboundMessage("x", "acct", ("r1",), "hi")
    with pytest.raises(ValueError, match="timezone-aware"):
        await eng.evaluate(message, MemorySignals(), datetime(2024, 1, 1))


async def test_decision_carries_version_and_evaluation_time(tmp_path: Path):
    path = tmp_path / "policies.yaml"
    data = b"policies:\n  follow_timing:\n    action: hold\n"
    path.write_bytes(data)
    eng = Engine.from_file(path)
    assert eng.version == hashlib.sha256(data).hexdigest()[:12]
    message = OutboundMessage("x", "acct", ("r1",), "hi")
    decision = await eng.evaluate(message, fresh_follower_signals(), NOW)
    assert decision.policy_version == eng.version
    assert 0 < decision.evaluation_seconds < 1


def test_engine_version_defaults_to_empty_and_can_be_given():
    assert Engine(PolicyFile()).version == ""
    assert engine({}, version="abc123").version == "abc123"


def test_from_file_refuses_a_bad_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("policies:\n  follow_timing:\n    action: maybe\n")
    with pytest.raises(PolicyFileError, match=r"policies\.follow_timing\.action"):
        Engine.from_file(path)


def test_active_policies_carry_their_effective_action_and_mode():
    eng = engine(
        {
            "follow_timing": {"action": "block", "mode": "enforce"},
            "template_reuse": {"action": "hold"},
        },
        mode="shadow",
    )
    assert [(p.name, p.action, p.mode) for p in eng.active] == [
        ("follow_timing", Action.BLOCK, Mode.ENFORCE),
        ("template_reuse", Action.HOLD, Mode.SHADOW),
    ]
