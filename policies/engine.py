"""The policy engine: every enabled policy judges a DM, the strictest action wins.

Policies are small classes registered in policies.registry; the engine knows none of them by
name. Each has a `name` (its key under `policies:` in the policy file), a `config_model`
(the pydantic model of that section), is built from its section, and answers
`evaluate(message, signals, now)` with a reason when it matches or None.

Exceptions raised by a policy (a store outage inside `signals`, a bug) propagate out of
`Engine.evaluate` unchanged: the proxy answers such a DM with 503 and never forwards it
unjudged (fail closed). The engine does not catch and carry on, because a DM judged by
half of the policies would silently be allowed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from policies.config import LoadedPolicies, PolicyFile, load_policy_file
from policies.model import (
    Action,
    Decision,
    Finding,
    Mode,
    OutboundMessage,
    PolicyMatch,
    Signals,
)
from policies.registry import POLICY_TYPES
from policies.schema import PolicyConfig


class Policy(Protocol):
    name: ClassVar[str]
    config_model: ClassVar[type[PolicyConfig]]

    def __init__(self, config: Any) -> None: ...

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> str | Finding | None:
        """The reason this DM matches (without the policy name), or None; a Finding when
        the match also names a campaign."""
        ...


# Adding a policy: a module with its class and its config model, listed in
# policies.registry (the policy file's schema is built from the same list).
_TYPES: tuple[type[Policy], ...] = POLICY_TYPES


@dataclass(frozen=True)
class ActivePolicy:
    """A policy that is on, with the action and mode it acts with."""

    name: str
    action: Action
    mode: Mode
    policy: Policy


class Engine:
    """Immutable once built: a reloaded policy file becomes a new Engine."""

    def __init__(self, config: PolicyFile, version: str = "") -> None:
        self.config = config
        self.version = version
        active: list[ActivePolicy] = []
        for policy_type in _TYPES:
            section = config.policies.get(policy_type.name)
            action = section.action.to_action() if section else None
            if section is None or action is None:  # absent or `off`: never evaluated
                continue
            mode = section.mode or config.mode
            active.append(ActivePolicy(policy_type.name, action, mode, policy_type(section)))
        self.active: tuple[ActivePolicy, ...] = tuple(active)
        # Whether the proxy must report forwarded DMs (StoreSignals.contacts_reached): some
        # active policy asks Signals.contact_history, whose "first contact" ends there.
        self.tracks_contacts = any(getattr(a.policy, "tracks_contacts", False) for a in active)

    @classmethod
    def from_loaded(cls, loaded: LoadedPolicies) -> Engine:
        return cls(loaded.config, loaded.version)

    @classmethod
    def from_file(cls, path: str | Path) -> Engine:
        """Raises policies.config.PolicyFileError for a file that cannot be used."""
        return cls.from_loaded(load_policy_file(path))

    async def evaluate(self, message: OutboundMessage, signals: Signals, now: datetime) -> Decision:
        """Judge one DM. `now` must be timezone-aware (UTC).

        Every active policy is evaluated, even after a block: template_reuse records the
        attempt, and attempts count whatever happens to the DM. first_contact_pitch and
        burst both ask `Signals.contact_history`, which records the attempt idempotently,
        so the two may run concurrently without recording or counting anything twice.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        started = time.perf_counter()
        # Policies are independent: asking the store for their facts concurrently makes a
        # decision cost the slowest policy, not the sum. The first failure propagates.
        reasons = await asyncio.gather(
            *(active.policy.evaluate(message, signals, now) for active in self.active)
        )
        matches = [
            _match(active, reason)
            for active, reason in zip(self.active, reasons, strict=True)
            if reason is not None
        ]
        return Decision.of(
            matches,
            evaluation_seconds=time.perf_counter() - started,
            policy_version=self.version,
        )


def _match(active: ActivePolicy, reason: str | Finding) -> PolicyMatch:
    found = reason if isinstance(reason, Finding) else Finding(reason)
    return PolicyMatch(
        active.name,
        active.action,
        active.mode,
        f"{active.name}: {found.reason}",
        template_id=found.template_id,
    )
