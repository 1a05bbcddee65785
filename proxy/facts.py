"""Facts dmgate learns from traffic, webhooks and the review API.

Adapters (`proxy.platforms`) produce them, the store (`proxy.store.signals`) keeps them,
and the policies read what the store makes of them through `policies.model.Signals`. They
live here, at the proxy level, because both the adapters and the store need them and
`policies` may not import `proxy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Followed:
    """`follower` follows `account`. `at` is None when the follow is known but its time is
    not (an old follower seen in the first snapshot)."""

    account: str
    follower: str
    at: datetime | None


@dataclass(frozen=True)
class Unfollowed:
    account: str
    follower: str


@dataclass(frozen=True)
class FollowerSnapshot:
    """One page of `account`'s follower list. Ids new since earlier snapshots followed
    "now" — but only on the first page (lists are newest first) and only once the account
    has a baseline."""

    account: str
    followers: tuple[str, ...]
    first_page: bool


@dataclass(frozen=True)
class Identity:
    """The credential of this request belongs to `account` (learnt from a `me` answer)."""

    account: str


@dataclass(frozen=True)
class InboundMessage:
    """`sender` wrote a DM to `account`: a later DM from `account` to `sender` is a reply."""

    account: str
    sender: str
    at: datetime | None = None


# Longest profile text kept (a bio); user objects are attacker-controlled.
MAX_PROFILE_TEXT = 1000


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_PROFILE_TEXT]


@dataclass(frozen=True)
class Profile:
    """How `user` is addressed (display name, handle): a template's "Hi Anna" and
    "Hi Ben" normalise to the same text when the recipient's names are known.

    The details (handle, display name, bio, location) are what a reviewer reads about the
    recipient on a hold's page. They do not take part in equality: two sightings with the
    same names are the same fact for the template index."""

    user: str
    names: tuple[str, ...]
    username: str | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)
    description: str | None = field(default=None, compare=False)
    location: str | None = field(default=None, compare=False)

    @classmethod
    def seen(
        cls,
        user: str,
        names: tuple[str, ...],
        username: object = None,
        name: object = None,
        description: object = None,
        location: object = None,
    ) -> Profile:
        """A profile from a user object's fields (anything not a non-blank string is
        unknown; long texts are cut)."""
        return cls(user, names, _text(username), _text(name), _text(description), _text(location))


@dataclass(frozen=True)
class ConversationMembers:
    """The participants of a conversation, for DM sends that name only the conversation
    (a Bluesky `convoId`, an existing LinkedIn thread)."""

    conversation_id: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class SentMessage:
    """`account` sent the message `message_id` (a Mastodon status id), learnt from the
    platform's answer to a send that passed through dmgate or to a read of that message.
    `direct`: it reached only `recipients` (a direct status), so an edit of it is a new DM
    to them; only direct ones are kept (an edit of any other passes)."""

    account: str
    message_id: str
    recipients: tuple[str, ...]
    direct: bool


Fact = (
    Followed
    | Unfollowed
    | FollowerSnapshot
    | Identity
    | InboundMessage
    | Profile
    | ConversationMembers
    | SentMessage
)
