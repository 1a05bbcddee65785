"""The decision pipeline: one DM, read and parsed by the gateway, becomes an `Outcome`.

    retry or replay? ──▶ judge (policies + sender identity) ──▶ act (record; hold / block /
                                                                     forward)

Built once at start-up with everything it uses; it knows nothing of HTTP. The gateway
turns its outcomes into answers (and forwards what it allows); `dmgate simulate` drives
the same pipeline with a manual clock.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace

import structlog

from policies.model import Action, Decision, Mode, OutboundMessage, PolicyMatch
from proxy.clock import Clock
from proxy.contacts import Contacts
from proxy.crypto import StoredRequest
from proxy.edits import SentMessages
from proxy.errors import EditNotJudged, PolicyFailure
from proxy.holds import HeldDM, HoldService, dedupe_key
from proxy.identity import Sender, SenderIdentities
from proxy.ids import new_id
from proxy.metrics import Metrics
from proxy.platforms.base import Classified, ParsedDM, Platform, PlatformResponse
from proxy.policy_loader import PolicyHolder
from proxy.routing import Target
from proxy.store import Store, StoreError, StoreUnavailable
from proxy.store.database import Row
from proxy.store.decisions import DecisionRecord
from proxy.store.holds import PENDING, REJECTED, SEND_FAILED, overruled
from proxy.unanswered import Answer, UnansweredSends

log = structlog.get_logger("dmgate")

# The policy names of dmgate's own verdicts, beside the policy file's.
IDENTITY_POLICY = "sender_identity"
REVIEW_POLICY = "review"
# No platform delivers a longer DM (X's limit); beyond it the text is not judged further.
MAX_JUDGED_TEXT = 10_000


@dataclass(frozen=True)
class Submission:
    """One DM request, as the gateway read it."""

    target: Target
    platform: Platform
    call: Classified
    dm: ParsedDM
    body: bytes  # as the tool sent it
    # As it would be released after a hold: the decoded body the policies judged.
    held_request: StoredRequest


# --- outcomes: what the gateway does next ---------------------------------------------


@dataclass(frozen=True)
class Forward:
    """Send it upstream. `key`: keep the answer for a retry if the tool does not get it
    (None: a reviewer's approval is being honoured, nothing to keep)."""

    decision: str  # the DMGate-Decision header
    message: OutboundMessage
    key: str | None


@dataclass(frozen=True)
class Replay:
    """The tool retries a send whose answer it did not get: give it that answer."""

    answer: Answer
    key: str


@dataclass(frozen=True)
class Held:
    row: Row


@dataclass(frozen=True)
class Blocked:
    answer: PlatformResponse


@dataclass(frozen=True)
class Unjudged:
    """No DM after all (an edit of a message that is not direct): forward it untouched,
    without a decision."""


Outcome = Forward | Replay | Held | Blocked | Unjudged
# A DM as the policies see it, the sender, and a batch's parts (label, message).
Judged = tuple[OutboundMessage, Sender, tuple[tuple[str, OutboundMessage], ...]]


class DecisionPipeline:
    def __init__(
        self,
        policies: PolicyHolder,
        store: Store,
        identities: SenderIdentities,
        unanswered: UnansweredSends,
        holds: HoldService,
        contacts: Contacts,
        metrics: Metrics,
        clock: Clock,
        edits: SentMessages | None = None,
    ) -> None:
        self._policies = policies
        self._edits = edits
        self._store = store
        self._identities = identities
        self._unanswered = unanswered
        self._holds = holds
        self._contacts = contacts
        self._metrics = metrics
        self._clock = clock

    async def decide(self, sub: Submission) -> Outcome:
        """Fails closed: any store failure is `StoreUnavailable` (a 503; the DM is not
        forwarded), also a value the store refused (PostgreSQL: a NUL in the text) — a
        traceback would log the driver's message, which carries the text."""
        try:
            return await self._decide(sub)
        except StoreError as exc:
            raise StoreUnavailable(
                exc.cause,
                "dmgate's store is unreachable; DMs are refused (not forwarded) until it is back",
            ) from exc

    async def delivered(self, message: OutboundMessage) -> None:
        """The platform accepted a forwarded DM: its recipients have been reached."""
        await self._contacts.reached(message.platform, message.account, message.recipients)

    async def _decide(self, sub: Submission) -> Outcome:
        judged = await self._message(sub)
        if judged is None:
            return Unjudged()
        message, sender, parts = judged
        self._metrics.sender_identity.labels(message.platform, sender.source).inc()
        # An encrypted text says nothing: the request's bytes tell one DM from another.
        text_key = sub.dm.text if not sub.dm.opaque else "opaque:" + _digest(sub.body)
        key = dedupe_key(message.platform, message.account, message.recipients, text_key)
        repeat = await self._repeat(sub, message, key)
        if repeat is not None:
            return repeat
        decision = await (
            self._judge_parts(parts, sender) if parts else self.judge(message, sender)
        )
        record = self._record(message, decision)
        _count(self._metrics, message.platform, decision)
        if decision.action is Action.HOLD:
            held = HeldDM(
                sub.target.route_name,
                sub.platform,
                sub.call,
                sub.dm,
                message,
                key,
                sub.held_request,
            )
            row = await self._holds.create(held, decision, record)
            log_decision(replace(record, hold_id=row["id"]), decision=decision)
            return Held(row)
        await self._store.decisions.record(record)
        log_decision(record, decision=decision)
        if decision.action is Action.BLOCK:
            reason = "; ".join(m.reason for m in decision.enforced if m.action is Action.BLOCK)
            return Blocked(sub.platform.block_response(sub.call, reason))
        header = f"{decision.would_action.value}; shadow" if decision.shadow else "allow"
        return Forward(header, message, key)

    async def _message(self, sub: Submission) -> Judged | None:
        """The DM as the policies see it: sender identified, recipients resolved (members
        of a conversation the send names only by id; an edited direct message's recipients
        too), recipients' names for the template placeholder; a batch's parts each so
        (the DM itself then reaches all their recipients). None: an edit of a message that
        is no DM (`proxy.edits`)."""
        platform, dm = sub.platform, sub.dm
        sender = await self._identities.identify(
            sub.target, platform, sub.call, hint=dm.account_hint
        )
        if dm.edit_of is not None:
            if self._edits is None:
                raise EditNotJudged(f"{platform.name}: edits of sent messages are not judged here")
            edited = await self._edits.edited(
                sub.target, platform, sub.call, sender.account, dm.edit_of
            )
            if not edited.direct:
                return None
            # The edit reaches whoever the message reached, and whoever it now mentions.
            dm = replace(dm, recipients=tuple(dict.fromkeys(edited.recipients + dm.recipients)))
        # A list, not a generator: `await` in a generator expression makes an async one.
        parts = tuple([(label, await self._outbound(sub, p, sender)) for label, p in dm.parts])
        if parts:
            everyone = tuple(dict.fromkeys(r for _, p in parts for r in p.recipients))
            names = tuple(dict.fromkeys(n for _, p in parts for n in p.recipient_names))
            message = replace(parts[0][1], recipients=everyone, text=dm.text, recipient_names=names)
            return message, sender, parts
        return await self._outbound(sub, dm, sender), sender, ()

    async def _outbound(self, sub: Submission, dm: ParsedDM, sender: Sender) -> OutboundMessage:
        platform, signals = sub.platform, self._store.signals
        if not dm.recipients and dm.conversation_id:
            members = await signals.conversation_members(platform.name, dm.conversation_id)
            dm = replace(dm, recipients=members or (dm.conversation_id,))
        recipients = platform.recipients_for(dm, sender.account)
        names = dm.recipient_names + await signals.recipient_names(platform.name, recipients)
        return OutboundMessage(
            platform=platform.name,
            account=sender.account,
            recipients=recipients,
            text=dm.text,
            route=sub.target.route_name,
            recipient_names=names,
            opaque=dm.opaque,
        )

    async def _repeat(self, sub: Submission, message: OutboundMessage, key: str) -> Outcome | None:
        """A DM the policies already judged, sent again: None if it must be judged."""
        replay = await self._unanswered.previous(key)
        if replay is not None:
            # The platform does not get the DM twice.
            self._retried(message, "retry of a send whose answer the tool did not get")
            return Replay(replay, key)
        earlier = await self._store.holds.earlier_for_same_dm(key)
        if earlier is None:
            return None
        if earlier["status"] == PENDING:
            # The same hold, and the policies do not count it again.
            self._retried(message, "retry of an existing hold", earlier["id"], held=True)
            return Held(earlier)
        approved_again = earlier["status"] == SEND_FAILED and earlier["release_key"] == key
        if approved_again and await self._store.holds.take_failed_retry(
            earlier["id"], self._clock.now()
        ):
            # Exactly what the reviewer approved, once: the release failed, the tool retries.
            why = "retry of an approved hold whose send failed"
            self._retried(message, why, earlier["id"])
            return Forward("allow", message, None)
        if overruled(earlier):
            verdict = (
                f"a reviewer rejected this DM (hold {earlier['id']}): {earlier['reason'] or ''}"
                if earlier["status"] == REJECTED
                else f"a reviewer approved only an edited text of this DM (hold {earlier['id']})"
            )
            self._retried(message, verdict, earlier["id"], action=Action.BLOCK)
            reason = f"{REVIEW_POLICY}: {verdict}".rstrip(": ")
            return Blocked(sub.platform.block_response(sub.call, reason))
        return None

    async def judge(self, message: OutboundMessage, sender: Sender) -> Decision:
        """The policies' verdict on one DM at the clock's time (`dmgate simulate` asks
        this directly: history has no retries to recognise)."""
        decision = await self._evaluate(message)
        if not sender.verified:
            # Fail closed: a DM whose sender could not be verified is held for a person.
            mode = self._policies.engine.config.mode
            decision = decision.with_match(_identity_match(sender, mode))
        return decision

    async def _judge_parts(
        self, parts: tuple[tuple[str, OutboundMessage], ...], sender: Sender
    ) -> Decision:
        """A batch's verdict: every part judged with its own recipients, each verdict
        naming its part (`items[1]: template_reuse: …`), the strictest one for the whole."""
        matches: list[PolicyMatch] = []
        seconds, version = 0.0, ""
        for label, part in parts:
            decision = await self._evaluate(part)
            matches += [replace(m, reason=f"{label}: {m.reason}") for m in decision.matches]
            seconds += decision.evaluation_seconds
            version = decision.policy_version
        if not sender.verified:
            matches.append(_identity_match(sender, self._policies.engine.config.mode))
        return Decision.of(matches, evaluation_seconds=seconds, policy_version=version)

    async def _evaluate(self, message: OutboundMessage) -> Decision:
        engine = self._policies.engine
        started = time.perf_counter()
        try:
            decision = await engine.evaluate(
                as_judged(message), self._store.signals, self._clock.now()
            )
        except StoreError:  # the store's, not the policy's: answered as such
            raise
        except Exception as exc:
            log.exception("policy_failed", route=message.route)
            raise PolicyFailure(
                "a policy failed while judging this DM; it was not forwarded"
            ) from exc
        finally:
            self._metrics.policy_evaluation.observe(time.perf_counter() - started)
        return decision

    def _record(
        self, message: OutboundMessage, decision: Decision, action: Action | None = None
    ) -> DecisionRecord:
        taken = decision.action if action is None else action
        return DecisionRecord(
            id=new_id(),
            created_at=self._clock.now(),
            route=message.route,
            platform=message.platform,
            account=message.account,
            recipients=list(message.recipients),
            action=taken.value,
            would_action=(decision.would_action if action is None else taken).value,
            matches=[m.as_dict() for m in decision.matches],
            policy_version=decision.policy_version or self._policies.engine.version,
        )

    def _retried(
        self,
        message: OutboundMessage,
        reason: str,
        retry_of: str | None = None,
        held: bool = False,
        action: Action = Action.ALLOW,
    ) -> None:
        """A DM the policies did not judge again: a retry of one they already judged."""
        taken = Action.HOLD if held else action
        record = self._record(message, Decision(taken, taken), taken)
        log_decision(
            replace(record, hold_id=retry_of if held else None), reason=reason, retry_of=retry_of
        )


def log_decision(
    record: DecisionRecord,
    decision: Decision | None = None,
    reason: str | None = None,
    retry_of: str | None = None,
) -> None:
    """The one canonical record per DM (`dm_decision`), the same fields for every DM,
    judged or a retry of one judged before. Never the text, never credentials."""
    shadow = decision is not None and decision.shadow
    log.info(
        "dm_decision",
        decision_id=record.id,
        route=record.route,
        platform=record.platform,
        account=record.account,
        recipients=record.recipients,
        action=record.action,
        would_action=record.would_action,
        mode="shadow" if shadow else "enforce",
        policies=record.matches,
        evaluation_ms=round(decision.evaluation_seconds * 1000, 3) if decision else 0.0,
        policy_version=record.policy_version,
        hold_id=record.hold_id,
        reason=reason,
        retry_of=retry_of,
    )


def as_judged(message: OutboundMessage) -> OutboundMessage:
    """What the policies read: no more text than any platform delivers in one DM (X:
    10,000 characters), so a megabyte of text cannot stall the event loop."""
    if len(message.text) <= MAX_JUDGED_TEXT:
        return message
    return replace(message, text=message.text[:MAX_JUDGED_TEXT])


def _identity_match(sender: Sender, mode: Mode) -> PolicyMatch:
    what = (
        "no credential dmgate can read"
        if sender.credential_hash is None
        else "the platform did not say whose credential this is"
    )
    return PolicyMatch(
        IDENTITY_POLICY,
        Action.HOLD,
        mode,
        f"{IDENTITY_POLICY}: the sending account could not be verified ({what})",
    )


def _count(metrics: Metrics, platform: str, decision: Decision) -> None:
    mode = "shadow" if decision.shadow else "enforce"
    action = decision.would_action if decision.shadow else decision.action
    metrics.dm_decisions.labels(platform, action.value, mode).inc()
    for m in decision.matches:
        metrics.policy_matches.labels(m.policy, m.action.value, m.mode.value).inc()


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
