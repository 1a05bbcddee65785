"""Plain data shared by the engine, the policies and the proxy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Action(StrEnum):
    """What happens to a DM. Ordered from mildest to strictest."""

    ALLOW = "allow"
    HOLD = "hold"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.HOLD: 1, Action.BLOCK: 2}


class Mode(StrEnum):
    """`enforce` acts on a match; `shadow` only records what would have happened."""

    ENFORCE = "enforce"
    SHADOW = "shadow"


@dataclass(frozen=True)
class OutboundMessage:
    """One DM as the platform adapter understood it."""

    platform: str
    account: str
    recipients: tuple[str, ...]
    text: str
    route: str = ""
    # Display names / handles of the recipients when known, so "Hi Anna," and "Hi Ben,"
    # normalise to the same template.
    recipient_names: tuple[str, ...] = ()
    # The text is end-to-end encrypted (X's XChat): `text` is "", and the policies that
    # read text (template_reuse, first_contact_pitch) cannot judge it.
    opaque: bool = False


@dataclass(frozen=True)
class TemplateFingerprint:
    """What the store needs to index a message as a possible template copy.

    `band_keys` are already scoped to the sending account, so equal keys from different
    accounts never meet. `signature` is the MinHash as bytes; compare two with
    `policies.template_reuse.similarity`.
    """

    band_keys: tuple[int, ...]
    signature: bytes
    text_key: int  # hash of the normalised text: exact copies share it
    tokens: int
    # Campaign features (policies.template_reuse): the sorted unique uint32 (<u4) hashes of
    # the text's 5-grams and link hosts, the link hosts' hashes alone, the float16 sentence
    # embedding (b"" when not computed: no link) and its band keys (scoped like band_keys;
    # every attempt's template takes them).
    features: bytes = b""
    hosts: tuple[int, ...] = ()
    meaning: bytes = b""
    meaning_keys: tuple[int, ...] = ()
    # Loose MinHash band keys (more, shorter bands): a kept copy's template takes them.
    loose_keys: tuple[int, ...] = ()
    # A link no run-together words make: with a scheme, "www." or a path (not "title.so").
    full_link: bool = False

    @property
    def resemblance_keys(self) -> tuple[int, ...]:
        """The keys whose hit lets a candidate be judged by resemblance (StoredCopy.banded):
        a short text's MinHash band keys, a long text's loose keys (it has no others:
        policies.template_reuse.fingerprint)."""
        return self.band_keys or self.loose_keys


@dataclass(frozen=True)
class StoredCopy:
    """One kept copy of a campaign, as the store returns it for comparison. Copies stored
    before campaign features existed have empty `features` and `meaning`."""

    template_id: int
    text_key: int
    signature: bytes
    features: bytes = b""
    meaning: bytes = b""
    # The campaign shares one of the new text's resemblance keys (TemplateFingerprint): only
    # then is resemblance judged, so candidates found by meaning join only by containment
    # or meaning.
    banded: bool = True


@dataclass(frozen=True)
class MatchThresholds:
    """When a copy joins a campaign (policies.template_reuse.CampaignScore.matches)."""

    resemblance: float = 0.45
    containment: float = 1.0
    meaning: float = 1.0


@dataclass(frozen=True)
class CampaignMatch:
    """The campaign a DM was recorded under, and how it compares with the earlier copies."""

    template_id: int
    recipients: int  # distinct recipients in the window, this DM's included, up to the cap
    closest: float = 0.0  # similarity of the closest earlier copy (0: a new campaign)
    containment: float = 0.0  # share of the DM's features in the earlier copies
    by_meaning: bool = False  # joined by meaning only (not by its wording)
    linked: bool = False  # it links where the campaign's earlier copies link


@dataclass(frozen=True)
class ContactHistory:
    """What the store knows about the sending account's contacts, for this DM.

    A *first contact* is a recipient who has never written to the account and whom no
    earlier DM from the account reached (forwarded upstream): attempts that were held or
    blocked do not open a conversation, so the tool's next try is judged as a first
    message again.
    """

    first_contacts: tuple[str, ...]  # this DM's recipients it would reach first
    # Distinct recipients the account first tried to DM cold (they had not written) at or
    # after `since`, these included, counted up to `cap`.
    recent_first_contacts: int


class Signals(Protocol):
    """Facts about the world the policies may ask for. Implemented by the proxy's store;
    tests implement it with dicts."""

    async def followed_at(self, platform: str, account: str, follower: str) -> datetime | None:
        """When `follower` started following `account`, if known with a time."""
        ...

    async def has_written_to(self, platform: str, peer: str, account: str) -> bool:
        """Whether `peer` ever sent a DM to `account` (they wrote first)."""
        ...

    async def template_recipients(
        self,
        platform: str,
        account: str,
        fingerprint: TemplateFingerprint,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        threshold: float,
        cap: int,
    ) -> int:
        """Record this attempt under its template and return how many distinct recipients
        got (or were attempted with) the template since `since`, including these ones,
        counted up to `cap`."""
        ...

    async def template_campaign(
        self,
        platform: str,
        account: str,
        fingerprint: TemplateFingerprint,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        thresholds: MatchThresholds,
        cap: int,
    ) -> CampaignMatch:
        """Record this attempt under the campaign it belongs to (found by index among the
        campaigns sharing a band key with it, judged by
        `policies.template_reuse.closest_campaign`), or a new one, and answer which, with
        how many distinct recipients got (or were attempted with) a copy since `since`,
        these included, counted up to `cap`."""
        ...

    async def contact_history(
        self,
        platform: str,
        account: str,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        cap: int,
    ) -> ContactHistory:
        """Record this DM attempt as a contact of each recipient (the first attempt's time
        is kept) and answer which recipients it would reach first, and how many distinct
        recipients the account first tried to DM cold at or after `since`, these included,
        counted up to `cap` (0: not counted).

        Idempotent for one attempt, so several policies judging the same DM (concurrently)
        may each ask and get the same answer without counting anything twice. Every judged
        attempt is recorded, whether forwarded, held or blocked; the proxy tells the store
        separately which DMs reached their recipients.
        """
        ...


@dataclass(frozen=True)
class Finding:
    """A policy's reason for matching, with the campaign it found (template_reuse)."""

    reason: str
    template_id: str | None = None


@dataclass(frozen=True)
class PolicyMatch:
    """One policy's verdict on one DM."""

    policy: str
    action: Action
    mode: Mode
    reason: str
    # The campaign a template_reuse match belongs to (the store's template id), else None:
    # lets a reviewer list and reject every held copy of one campaign.
    template_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "action": self.action.value,
            "mode": self.mode.value,
            "reason": self.reason,
        }


def strictest(actions: Iterable[Action]) -> Action:
    return max(actions, key=lambda action: action.severity, default=Action.ALLOW)


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one DM."""

    action: Action  # what is done (enforced matches only)
    would_action: Action  # what would be done if every policy enforced
    matches: tuple[PolicyMatch, ...] = ()
    evaluation_seconds: float = 0.0
    policy_version: str = ""

    @classmethod
    def of(cls, matches: Iterable[PolicyMatch], **fields: Any) -> Decision:
        """The decision these matches make: the strictest enforced action is taken."""
        matches = tuple(matches)
        return cls(
            action=strictest(m.action for m in matches if m.mode is Mode.ENFORCE),
            would_action=strictest(m.action for m in matches),
            matches=matches,
            **fields,
        )

    def with_match(self, match: PolicyMatch) -> Decision:
        """This decision with one more verdict (the proxy's own, e.g. an unverified
        sender), combined by the same rule."""
        return Decision.of(
            (*self.matches, match),
            evaluation_seconds=self.evaluation_seconds,
            policy_version=self.policy_version,
        )

    @property
    def shadow(self) -> bool:
        """The policies only observed: something matched in shadow mode and nothing stricter
        was enforced."""
        return self.would_action.severity > self.action.severity

    @property
    def enforced(self) -> tuple[PolicyMatch, ...]:
        return tuple(m for m in self.matches if m.mode is Mode.ENFORCE)
