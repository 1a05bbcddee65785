"""Whose DMs a replay judges, and what it counted: light (no engine, no store), so the
parent process of replay workers stays small."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.backtest.inputs import Participants, Record


class AccountError(Exception):
    """Whose DMs to judge cannot be told: --account is needed."""


@dataclass
class Accounts:
    """Whose sent messages are judged, per platform: --account, or the archive owner (the
    participant common to every conversation). Generic inputs name the account on every
    line."""

    given: str | None
    owners: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def decide(cls, given: str | None, participants: Participants) -> Accounts:
        accounts = cls(given)
        for platform in sorted(participants.platforms()):
            if given is not None:
                accounts.owners[platform] = given
                continue
            candidates = participants.owner_candidates(platform)
            if len(candidates) != 1:
                shown = ", ".join(sorted(candidates)[:5]) or "none"
                raise AccountError(
                    f"cannot tell whose {platform} archive this is (participants in every "
                    f"conversation: {shown}); name the sending account with --account ID"
                )
            (owner,) = candidates
            accounts.owners[platform] = owner
            accounts.notes.append(
                f"{platform}: judging DMs sent by {owner} (the participant in every "
                "conversation; --account ID picks another)"
            )
        return accounts

    def direction(self, record: Record) -> tuple[str, bool] | None:
        """(account, sent by it) for a message of one of the judged accounts, else None."""
        owner = self.owners.get(record.platform)
        if record.outbound is not None:  # generic input: the line says
            account = record.sender if record.outbound else record.recipients[0]
            if self.given is not None and account != self.given:
                return None
            return account, record.outbound
        if owner is None:
            return None
        if record.sender == owner:
            return owner, True
        if owner in record.recipients:
            return owner, False
        return None


def scope_of(record: Record) -> str | None:
    """The account whose facts a record touches (a follow: the account followed; a
    generic line: the account it names), or None for an export's message, which belongs
    to the platform's archive owner (`Accounts.owners`, decided once every input is
    read). Every fact a policy reads is one account's, so accounts replay apart."""
    if record.kind == "follow":
        return record.recipients[0]
    if record.outbound is None:
        return None
    return record.sender if record.outbound else record.recipients[0]


@dataclass
class Tally:
    sent: int = 0
    received: int = 0
    follows: int = 0
    ignored: int = 0
