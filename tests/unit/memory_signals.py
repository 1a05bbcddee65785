"""Signals over plain dicts: what the policies see, without a store.

A test double of the proxy's store (`proxy/store/signals.py:StoreSignals`), held to it by
one contract suite (tests/contract/test_signals_contract.py) that runs the same tests
against both. Where they differ, the store is right and this file is fixed.

`template_recipients` follows the store step by step, so unit tests measure what
production does:

1. candidates: the templates named by any of the fingerprint's band keys, MinHash and
   meaning (the keys are scoped to the platform and sending account by the fingerprint
   itself, as in the store: the index holds bare keys), at most MAX_CANDIDATE_TEMPLATES of
   them, those sharing the most bands first;
2. the candidates' stored copies go to the policy's own pure comparison
   (`policies.template_reuse.closest_campaign`: resemblance to any copy of a template found
   by a MinHash band key — `StoredCopy.banded` —, containment in the union of the copies,
   meaning with a shared link host);
3. the attempt is recorded under the oldest campaign it matched (`CampaignScore.campaign`:
   fragments of one campaign converge there), or a new template. A new text
   becomes a copy while the template keeps fewer than MAX_COPIES, and only a kept copy
   indexes its MinHash band keys (a key already taken keeps its template) and claims its
   loose keys (the latest kept copy's template takes them); meaning keys are claimed by
   every attempt. Each recipient's seen_at
   becomes `now`;
4. the answer is the number of distinct recipients, seen at or after `since`, of every
   campaign the copy matched (`CampaignScore.matched`), this attempt's recipients included,
   counted up to `cap`.

Which of two equally good candidates wins is not specified (the store takes whichever
row comes first); this double takes the oldest.

`contact_history` likewise: each recipient's contact is recorded once, at the first
attempt, as *cold* unless the recipient had written to the account; a first contact is a
recipient who has not written and was never reached (`contacts_reached`, which the proxy
calls after forwarding a DM, marks only contacts already recorded); the count is of cold
contacts first attempted at or after `since`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from policies.model import (
    CampaignMatch,
    ContactHistory,
    MatchThresholds,
    StoredCopy,
    TemplateFingerprint,
)
from policies.template_reuse import campaign_match, closest_campaign

# The store's bounds, so the two cannot drift: copies kept per template (a hot template
# costs bounded comparisons; exact repeats are stored once), templates compared per message.
from proxy.store.template_index import MAX_CANDIDATE_TEMPLATES
from proxy.store.template_index import MAX_SIGNATURES_PER_TEMPLATE as MAX_COPIES


@dataclass
class StoredTemplate:
    id: int
    copies: dict[int, StoredCopy] = field(default_factory=dict)  # text_key -> copy
    recipients: dict[str, datetime] = field(default_factory=dict)  # recipient -> seen_at


class MemorySignals:
    def __init__(self) -> None:
        # A follower whose start is unknown maps to None (the store's NULL followed_at).
        self.follows: dict[tuple[str, str, str], datetime | None] = {}
        self.written: set[tuple[str, str, str]] = set()
        self.bands: dict[int, int] = {}  # band key -> template id
        self.templates: dict[int, StoredTemplate] = {}
        # (platform, account, recipient) -> (first attempt, cold: the recipient had not written)
        self.contacts: dict[tuple[str, str, str], tuple[datetime, bool]] = {}
        self.reached_at: dict[tuple[str, str, str], datetime] = {}
        self.calls: list[str] = []  # which facts were asked for, in order

    # --- plain facts, set up by tests (the store learns them from traffic) ---

    def follow(self, platform: str, account: str, follower: str, at: datetime | None) -> None:
        """`follower` follows `account` since `at` (None: known, but not since when). A
        later time replaces an earlier one; knowing "is a follower" never erases a time."""
        key = (platform, account, follower)
        if at is None:
            self.follows.setdefault(key, None)
        else:
            self.follows[key] = at

    def unfollow(self, platform: str, account: str, follower: str) -> None:
        self.follows.pop((platform, account, follower), None)

    def wrote(self, platform: str, peer: str, account: str) -> None:
        self.written.add((platform, peer, account))

    def reached(
        self, platform: str, account: str, recipients: tuple[str, ...], at: datetime
    ) -> None:
        """A DM from `account` was forwarded to `recipients`: `contacts_reached`, for tests
        that are not async."""
        for recipient in recipients:
            key = (platform, account, recipient)
            if key in self.contacts:  # the store marks only contacts it has recorded
                self.reached_at.setdefault(key, at)

    async def contacts_reached(
        self, platform: str, account: str, recipients: tuple[str, ...], at: datetime
    ) -> None:
        """StoreSignals.contacts_reached: they are no longer first contacts."""
        self.reached(platform, account, recipients, at)

    # --- the Signals protocol ---

    async def followed_at(self, platform: str, account: str, follower: str) -> datetime | None:
        self.calls.append("followed_at")
        return self.follows.get((platform, account, follower))

    async def has_written_to(self, platform: str, peer: str, account: str) -> bool:
        self.calls.append("has_written_to")
        return (platform, peer, account) in self.written

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
        """StoreSignals.template_recipients: the resemblance test alone, the count."""
        found = await self.template_campaign(
            platform, account, fingerprint, recipients, now, since, MatchThresholds(threshold), cap
        )
        return found.recipients

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
        self.calls.append("template_recipients")
        if not recipients:
            # The store cannot record an attempt to nobody (the proxy never asks: a DM
            # keeps at least one recipient).
            raise ValueError("template_recipients needs at least one recipient")
        hits: dict[int, int] = {}
        for key in fingerprint.band_keys + fingerprint.loose_keys + fingerprint.meaning_keys:
            if (template_id := self.bands.get(key)) is not None:
                hits[template_id] = hits.get(template_id, 0) + 1
        candidates = sorted(hits, key=lambda tid: (-hits[tid], tid))[:MAX_CANDIDATE_TEMPLATES]
        banded = {self.bands.get(key) for key in fingerprint.resemblance_keys}
        rows = [
            replace(c, banded=tid in banded)
            for tid in sorted(candidates)
            for c in self.templates[tid].copies.values()
        ]
        best = closest_campaign(fingerprint, rows, thresholds)

        target = best.campaign if best is not None else len(self.templates) + 1
        template = self.templates.setdefault(target, StoredTemplate(target))
        if fingerprint.text_key not in template.copies and len(template.copies) < MAX_COPIES:
            template.copies[fingerprint.text_key] = StoredCopy(
                target,
                fingerprint.text_key,
                fingerprint.signature,
                fingerprint.features,
                fingerprint.meaning,
            )
            for key in fingerprint.band_keys:  # only a kept copy's keys are indexed
                self.bands.setdefault(key, target)
            for key in fingerprint.loose_keys:  # the latest kept copy takes a loose key
                self.bands[key] = target
        for key in fingerprint.meaning_keys:  # the latest template takes a meaning key
            self.bands[key] = target
        for recipient in recipients:
            template.recipients[recipient] = now  # the latest attempt's time, as stored
        # Distinct recipients of every campaign the copy matched (fragments of one campaign).
        counted = {
            r
            for tid in (best.matched if best is not None else (target,))
            for r, at in self.templates[tid].recipients.items()
            if at >= since
        }
        return campaign_match(best, target, min(len(counted), cap), thresholds)

    async def contact_history(
        self,
        platform: str,
        account: str,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        cap: int,
    ) -> ContactHistory:
        self.calls.append("contact_history")
        first: list[str] = []
        for recipient in dict.fromkeys(recipients):
            key = (platform, account, recipient)
            wrote = (platform, recipient, account) in self.written
            self.contacts.setdefault(key, (now, not wrote))
            if not wrote and key not in self.reached_at:
                first.append(recipient)
        recent = 0
        if cap > 0:
            recent = sum(
                1
                for (p, a, _), (at, cold) in self.contacts.items()
                if p == platform and a == account and cold and at >= since
            )
        return ContactHistory(tuple(first), min(recent, cap))
