"""What a reviewer reads about a recipient comes from user objects the adapters already
see: handle, display name, bio and location travel with the `Profile` fact (its names
alone decide equality), long or blank values are cut or dropped, and retention forgets
profiles no window or pending hold needs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from proxy.facts import MAX_PROFILE_TEXT, Profile
from proxy.platforms.bluesky import BlueskyPlatform
from proxy.platforms.linkedin import LinkedInPlatform
from proxy.platforms.mastodon import MastodonPlatform
from proxy.platforms.x import XPlatform
from proxy.store import Store
from tests.unit.test_x_platform import view


def _learn(platform: Any, path: str, doc: Any, account: str | None = "42") -> list[Any]:
    return platform.learn(
        platform.classify(view("GET", path)), account, 200, json.dumps(doc).encode()
    )


def _profile(facts: list[Any], user: str) -> Profile:
    return next(f for f in facts if isinstance(f, Profile) and f.user == user)


def test_x_follower_list_users_carry_bio_and_location() -> None:
    doc = {
        "data": [
            {
                "id": "7",
                "name": "Ana Souza",
                "username": "anasouza",
                "description": "Designer. <b>Tea</b>",
                "location": " Porto ",
            },
            {"id": "8", "name": "Bo", "username": "bo", "description": "   "},
        ],
        "meta": {"result_count": 2},
    }
    facts = _learn(XPlatform(), "/2/users/42/followers", doc)
    ana = _profile(facts, "7")
    assert (ana.username, ana.name, ana.description, ana.location) == (
        "anasouza",
        "Ana Souza",
        "Designer. <b>Tea</b>",  # kept as written: the page escapes it
        "Porto",
    )
    assert _profile(facts, "8").description is None
    assert ana == Profile("7", ("Ana Souza", "anasouza"))  # equality: names only


def test_mastodon_bio_is_plain_text() -> None:
    account = {
        "id": "7",
        "username": "bob",
        "acct": "bob@remote.example",
        "display_name": "Bobby",
        "note": "<p>Climber &amp; <a href='x'>coder</a></p>",
    }
    facts = _learn(MastodonPlatform(), "/api/v1/accounts/42/followers", [account])
    bob = _profile(facts, "bob@remote.example")
    assert (bob.username, bob.name, bob.description) == (
        "bob@remote.example",
        "Bobby",
        "Climber & coder",
    )


def test_bluesky_profile_description() -> None:
    doc = {
        "subject": {"did": "did:plc:me", "handle": "me.test"},
        "followers": [
            {
                "did": "did:plc:ann",
                "handle": "ann.test",
                "displayName": "Ann",
                "description": "x" * (MAX_PROFILE_TEXT + 50),
            }
        ],
    }
    facts = _learn(
        BlueskyPlatform(), "/xrpc/app.bsky.graph.getFollowers", doc, account="did:plc:me"
    )
    ann = _profile(facts, "did:plc:ann")
    assert (ann.username, ann.name) == ("ann.test", "Ann")
    assert ann.description == "x" * MAX_PROFILE_TEXT  # cut to a bounded size


def test_linkedin_mini_profile_headline() -> None:
    mini = {
        "entityUrn": "urn:li:fs_miniProfile:ACoAAB",
        "firstName": "Anna",
        "lastName": "Lee",
        "publicIdentifier": "anna-lee",
        "occupation": "Head of Growth at Example",
    }
    facts = _learn(LinkedInPlatform(), "/voyager/api/me", {"plainId": 1, "miniProfile": mini})
    anna = _profile(facts, "ACoAAB")
    assert (anna.username, anna.name, anna.description) == (
        "anna-lee",
        "Anna Lee",
        "Head of Growth at Example",
    )


def test_profiles_are_stored_kept_for_holds_and_pruned(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=10)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], set[str]]:
        store = await Store.open(f"sqlite:///{tmp_path / 'p.db'}")
        try:
            full = Profile.seen("7", ("Ana", "ana"), "ana", "Ana", "Bio", "Porto")
            await store.signals.record_facts("x", [full], old)
            # A sparser sighting later keeps what the fuller one taught.
            await store.signals.record_facts("x", [Profile("7", ("Ana", "ana"))], old)
            await store.signals.record_facts("x", [Profile.seen("8", ("Bo",), "bo")], old)
            await store.signals.record_facts("x", [Profile.seen("9", ("Cy",), "cy")], now)
            hold = {"id": "h", "platform": "x", "account": "42", "recipients": ["7", "8"]}
            [seen7, seen8] = (await store.profiles.for_holds([hold]))["h"]
            await store.profiles.touch("x", ["7"], now)  # a new hold names 7
            pruned = await store.prune(now - timedelta(days=5), now - timedelta(days=5))
            assert pruned["profiles"] == 1
            left = await store.profiles.for_holds([{**hold, "recipients": ["7", "8", "9"]}])
            return seen7, seen8, {p["id"] for p in left["h"] if p["username"]}
        finally:
            await store.close()

    seen7, seen8, left = asyncio.run(scenario())
    assert (seen7["username"], seen7["description"], seen7["location"]) == ("ana", "Bio", "Porto")
    assert seen7["wrote_first"] is False and seen7["followed_at"] is None
    assert seen8["username"] == "bo"
    assert left == {"7", "9"}  # 8: seen long ago, named by no hold
