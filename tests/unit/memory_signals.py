"""Signals over plain dicts: what the policies see, without a store.

`template_recipients` follows the contract the proxy's store (proxy/store/signals.py)
implements, step by step, so tests and bench/detection.py measure what production does:

1. candidates: the templates found under any of the fingerprint's band keys (scoped to the
   platform and sending account);
2. each candidate is scored by its best similarity between the new signature and *any*
   stored copy (comparing every copy, not one representative, keeps templates whose copies
   drift apart in small steps together; an equal text_key scores 1.0);
3. the attempt is recorded under the best-scoring candidate reaching `threshold` (the
   oldest on a tie), or a new template: its signature becomes a copy, band keys not yet
   taken point at the template (a taken key keeps its template), and each recipient's
   seen_at becomes `now`;
4. the answer is the number of that template's distinct recipients seen at or after
   `since`, this attempt's recipients included, counted up to `cap`.

`contact_history` likewise: each recipient's contact is recorded once, at the first
attempt, as *cold* unless the recipient had written to the account; a first contact is a
recipient who has not written and was never reached (`reached`, which the proxy calls
after forwarding a DM); the count is of cold contacts first attempted at or after `since`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from policies.model import ContactHistory, TemplateFingerprint
from policies.template_reuse import similarity

# Copies kept per template, as in the store: a hot template costs bounded comparisons.
# Exact repeats (same text_key) are stored once.
MAX_COPIES = 16


@dataclass
class StoredTemplate:
    id: int
    copies: dict[int, bytes] = field(default_factory=dict)  # text_key -> signature
    recipients: dict[str, datetime] = field(default_factory=dict)  # recipient -> seen_at


class MemorySignals:
    def __init__(self) -> None:
        self.follows: dict[tuple[str, str, str], datetime] = {}
        self.written: set[tuple[str, str, str]] = set()
        self.bands: dict[tuple[str, str, int], int] = {}  # band key -> template id
        self.templates: dict[int, StoredTemplate] = {}
        # (platform, account, recipient) -> (first attempt, cold: the recipient had not written)
        self.contacts: dict[tuple[str, str, str], tuple[datetime, bool]] = {}
        self.reached_at: dict[tuple[str, str, str], datetime] = {}
        self.calls: list[str] = []  # which facts were asked for, in order

    # --- plain facts, set up by tests ---

    def follow(self, platform: str, account: str, follower: str, at: datetime) -> None:
        self.follows[(platform, account, follower)] = at

    def wrote(self, platform: str, peer: str, account: str) -> None:
        self.written.add((platform, peer, account))

    def reached(
        self, platform: str, account: str, recipients: tuple[str, ...], at: datetime
    ) -> None:
        """A DM from `account` was forwarded to `recipients` (StoreSignals.contacts_reached)."""
        for recipient in recipients:
            self.reached_at.setdefault((platform, account, recipient), at)

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
        self.calls.append("template_recipients")
        candidates = {
            template_id
            for key in fingerprint.band_keys
            if (template_id := self.bands.get((platform, account, key))) is not None
        }
        target, best = None, -1.0
        for template_id in sorted(candidates):
            for text_key, signature in self.templates[template_id].copies.items():
                if text_key == fingerprint.text_key:
                    score = 1.0
                else:
                    score = similarity(fingerprint.signature, signature)
                if score >= threshold and score > best:
                    target, best = template_id, score

        if target is None:
            target = len(self.templates) + 1
            self.templates[target] = StoredTemplate(target)
        template = self.templates[target]
        if fingerprint.text_key not in template.copies and len(template.copies) < MAX_COPIES:
            template.copies[fingerprint.text_key] = fingerprint.signature
        for key in fingerprint.band_keys:
            self.bands.setdefault((platform, account, key), target)
        for recipient in recipients:
            template.recipients[recipient] = max(now, template.recipients.get(recipient, now))

        recent = sum(1 for seen_at in template.recipients.values() if seen_at >= since)
        return min(recent, cap)

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
