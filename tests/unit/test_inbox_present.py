"""How holds read on the review pages: recipients by name and handle, reasons with handles
instead of ids, and a campaign copy's fixed and varying parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proxy.inbox import present
from proxy.inbox.campaigns import fixed_and_varying


def test_recipient_reads_as_name_and_handle_never_a_bare_id() -> None:
    assert present.display_name({"id": "5", "name": "Ana", "username": "ana"}) == "Ana (@ana)"
    assert present.display_name({"id": "5", "username": "ana"}) == "@ana"
    assert present.display_name({"id": "5", "names": ["Ana Lee"]}) == "Ana Lee"
    assert present.display_name({"id": "5"}) == "user 5 (no profile seen yet)"
    assert present.short_name({"id": "did:plc:x", "username": "ann.bsky.social"}) == (
        "@ann.bsky.social"
    )


def test_reasons_name_recipients_by_handle_without_the_policy_prefix() -> None:
    match = {"policy": "follow_timing", "reason": "follow_timing: recipient 55 followed 40s ago"}
    profiles = [{"id": "55", "username": "ana"}, {"id": "5", "username": "bo"}]
    assert present.reason_text(match, profiles) == "Recipient @ana followed 40s ago"
    assert present.with_handles("55 and 555 and @5", profiles) == "@ana and 555 and @5"


def test_a_display_name_is_put_in_a_reason_as_it_is_never_as_a_regex_escape() -> None:
    # Names are someone else's words: `\1`, a trailing backslash or `\g<0>` in one took
    # down the inbox page (re.error) or changed the reason shown.
    for name in ["Zoe \\1", "Ann\\", "\\g<0> x"]:
        profiles = [{"id": "902", "name": name}]
        assert present.with_handles("recipient 902 followed 4s ago", profiles) == (
            f"recipient {name} followed 4s ago"
        )


def test_policy_words_and_ages() -> None:
    assert present.policy_label("template_reuse") == "Same text to many people"
    assert present.policy_label("new_policy") == "New policy"
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert present.age(now - timedelta(seconds=40), now) == "40 s"
    assert present.age(now - timedelta(minutes=12), now) == "12 min"
    assert present.age(now - timedelta(hours=3, minutes=5), now) == "3 h 5 min"
    assert present.when("2026-12-06T05:12:12.4Z") == "2026-12-06 05:12 UTC"


def test_fixed_and_varying_parts_of_a_campaign_copy() -> None:
    others = [
        "Hey Ben, I built Launchpad for teams like yours: https://lp.example/1",
        "Hey Cleo, I built Launchpad for teams like yours: https://lp.example/2",
    ]
    runs = fixed_and_varying(
        "Hey Anna, I built Launchpad for teams like yours: https://lp.example/0", others
    )
    assert "".join(t for t, _ in runs).startswith("Hey Anna, I built")
    assert [t.strip() for t, varying in runs if varying] == ["Anna,", "https://lp.example/0"]
    assert fixed_and_varying("alone", []) == [("alone", False)]
