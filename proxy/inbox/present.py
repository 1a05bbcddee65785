"""How holds read on the review pages: policies in plain words, recipients by name and
handle, ages, and why a hold was held, spelled out with the recipients' handles.

Everything here returns plain strings; the templates escape them (DM texts, bios and
names are written by strangers)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# One short label per policy (filters, badges) and a sentence for the hold's page.
POLICY_WORDS: dict[str, tuple[str, str]] = {
    "follow_timing": (
        "Sent right after a follow",
        "An automatic “thanks for the follow” DM: the recipient followed moments ago and "
        "has not written.",
    ),
    "template_reuse": (
        "Same text to many people",
        "A copy of a template sent to many recipients, with only names or links changed.",
    ),
    "first_contact_pitch": (
        "Pitch in a first message",
        "A link or call to action in the first message to someone who never wrote.",
    ),
    "burst": (
        "Many first messages at once",
        "More first contacts from this account than usual in a short time.",
    ),
    "sender_identity": (
        "Sender not verified",
        "dmgate could not tell which account is sending this message.",
    ),
}

REJECT_PRESETS = (
    "Automated thank-you for following",
    "Template sent to many people",
    "Sales pitch to someone who never wrote",
    "Wrong recipient or account",
    "Tone not right for this person",
)


def policy_label(name: str) -> str:
    return POLICY_WORDS.get(name, (name.replace("_", " ").capitalize(), ""))[0]


def policy_sentence(name: str) -> str:
    return POLICY_WORDS.get(name, ("", f"Matched the {name} policy."))[1]


def age(since: datetime, now: datetime | None = None) -> str:
    """ "40 s", "12 min", "3 h", "2 d"."""
    seconds = int(((now or datetime.now(UTC)) - since).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def when(at: datetime | str | None) -> str:
    """ "2026-12-06 05:12 UTC" from a datetime or an RFC 3339 string."""
    if not at:
        return ""
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return at
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def handle(profile: dict[str, Any]) -> str | None:
    username = profile.get("username")
    if not username:
        return None
    return username if username.startswith("@") or ":" in username else f"@{username}"


def display_name(profile: dict[str, Any]) -> str:
    """ "Anna Lee (@anna)", or the handle, or "user 5555 (not seen yet)"."""
    name = profile.get("name") or next(iter(profile.get("names") or []), None)
    at = handle(profile)
    if name and at and name != profile.get("username"):
        return f"{name} ({at})"
    if name or at:
        return str(name or at)
    return f"user {profile['id']} (no profile seen yet)"


def short_name(profile: dict[str, Any]) -> str:
    return handle(profile) or profile.get("name") or f"user {profile['id']}"


def reason_text(match: dict[str, Any], profiles: list[dict[str, Any]]) -> str:
    """A match's reason without its policy's name in front, recipients by handle."""
    reason = str(match.get("reason") or "")
    reason = reason.removeprefix(f"{match.get('policy')}: ")
    return sentence(with_handles(reason, profiles))


def with_handles(reason: str, profiles: list[dict[str, Any]]) -> str:
    """A policy's reason with recipient ids replaced by how people know them: "recipient
    5555 followed 40s ago" → "recipient @anna followed 40s ago"."""
    for p in profiles:
        if p["id"] and (p.get("username") or p.get("name")):
            # Backslashes doubled: a replacement string reads `\1` and `\g<…>` in a display
            # name (someone else's words) as regex escapes.
            name = short_name(p).replace("\\", "\\\\")
            reason = re.sub(rf"(?<![\w@]){re.escape(p['id'])}(?!\w)", name, reason)
    return reason
