"""Replay: every record in time order, each sent DM judged by the real policy engine on the
real store (an ephemeral SQLite), the clock set to the message's time.

The seam is `Judge`: what `dmgate serve` does to one DM, minus the network. `StoreJudge`
builds it from the same parts serve uses (`policies.engine.Engine` loaded from the policy
file, `proxy.store.Store` with its migrations, `StoreSignals`), so no policy has a second
implementation here. Received messages become "the recipient wrote first" facts and
follows become follow facts, through the store's own `record_facts`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import xxhash

from policies.engine import Engine
from policies.model import Action, Decision, OutboundMessage
from policies.template_reuse import normalise
from proxy.backtest.accounts import Accounts, Tally
from proxy.backtest.inputs import Record
from proxy.backtest.spool import Result, Spool
from proxy.backtest.worker import run_async
from proxy.facts import Fact, Followed, InboundMessage, Profile
from proxy.pipeline import as_judged
from proxy.store import Store
from proxy.store.database import Database
from proxy.store.errors import translated

T = TypeVar("T")

ROUTE = "simulate"


class Judge(Protocol):
    """One policy file's judgement of DMs, as `dmgate serve` makes it, at a given time."""

    async def judge(self, message: OutboundMessage, at: datetime) -> Decision:
        """Evaluate the DM and count/record it as serve does."""
        ...

    async def delivered(self, message: OutboundMessage, at: datetime) -> None:
        """An allowed DM reached its recipients (they are no longer first contacts)."""
        ...

    async def learn(self, platform: str, facts: list[Fact], at: datetime) -> None:
        """Facts seen at `at` (follows, who wrote to the account, names)."""
        ...

    async def close(self) -> None: ...


class ReplayDatabase(Database):
    """The store's `Database` (SQLite) for a replay: every operation runs in the calling
    thread on one connection, in transactions of `COMMIT_EVERY` operations.

    `Database` gives each operation its own transaction on a pooled connection, reads on
    another, and writes in a thread pool, so that serve's event loop keeps answering and a
    held DM is durable once acknowledged. A replay has one caller, nothing to answer
    meanwhile and nothing to keep after a crash: the pool hop, the checkout and the commit
    per operation were a third of its CPU time (bench/simulate.py). The operations are the
    store's own (`StoreSignals`), their statements unchanged; reads on the same connection
    see every earlier write, as serve's reads see committed ones."""

    # Each transaction's rollback journal is kept in memory (below): a few thousand pages
    # at most, where longer transactions grew a worker by tens of MB.
    COMMIT_EVERY = 1000
    # Serve's durability (WAL, synchronous=NORMAL) guards acknowledged holds; a replay's
    # database is thrown away and rebuilt from the input if anything goes wrong, so it
    # keeps its rollback journal in memory, never waits for the disk, and holds its lock
    # for the whole run. Its page cache is 16 MB: with SQLite's default (2 MB) a replay
    # worker of bench/simulate.py at 300,000 lines read 28 GB from the OS's cache of its
    # store (70 MB), in 7 million reads, and spent 14 % more CPU time; at 600,000 lines
    # 48 MB saved a further 4 % for 32 MB more per worker (the workers' code and model are
    # shared, `simulate._context`, but the cache is each worker's own).
    PRAGMAS = (
        "journal_mode=MEMORY",
        "synchronous=OFF",
        "locking_mode=EXCLUSIVE",
        "temp_store=MEMORY",
        "cache_size=-16000",
    )

    _conn: Any = None
    _tx: Any = None
    _ops = 0

    def _connection(self) -> Any:
        assert self._write_engine is not None, "ReplayDatabase is for SQLite"
        if self._conn is None:
            self._conn = self._write_engine.connect()
            driver = self._conn.connection.driver_connection  # outside any transaction
            for pragma in self.PRAGMAS:
                driver.execute(f"PRAGMA {pragma}")
            self._tx = self._conn.begin()  # BEGIN IMMEDIATE (the write engine's listener)
        return self._conn

    def _commit(self) -> None:
        if self._tx is not None:
            self._tx.commit()
            self._tx = self._conn.begin()
        self._ops = 0

    # The store's errors, as `Database` raises them: `translated()` entered only when there
    # is one to translate, not around every operation (1 µs each, ~0.8 % of a replay).
    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        try:  # always in the calling thread (`inline` changes nothing here)
            result = fn(self._connection(), *args)
            self._ops += 1
            if self._ops >= self.COMMIT_EVERY:
                self._commit()
        except Exception:
            with translated():
                raise
        return result

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(self._connection(), *args)
        except Exception:
            with translated():
                raise

    async def migrate(self) -> None:
        await super().migrate()
        with translated():
            self._commit()

    async def close(self) -> None:
        if self._conn is not None:
            with translated():
                self._tx.commit()
                self._conn.close()
            self._conn = self._tx = None
        await super().close()


class StoreJudge:
    """The engine of one policy file on its own ephemeral store."""

    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self._names_known = False

    @classmethod
    async def open(cls, policy_file: Path, directory: Path) -> StoreJudge:
        """Raises policies.config.PolicyFileError for a policy file that cannot be used."""
        engine = Engine.from_file(policy_file)
        db = ReplayDatabase(f"sqlite:///{directory / 'store.db'}")
        await db.migrate()
        return cls(engine, Store(db))

    async def judge(self, message: OutboundMessage, at: datetime) -> Decision:
        # As serve: the recipients' known names join the ones the request carried.
        if self._names_known:
            known = await self.store.signals.recipient_names(message.platform, message.recipients)
            message = replace(message, recipient_names=message.recipient_names + known)
        message = as_judged(message)  # what serve's pipeline lets the policies read
        return await self.engine.evaluate(message, self.store.signals, at)

    async def delivered(self, message: OutboundMessage, at: datetime) -> None:
        if self.engine.tracks_contacts:
            await self.store.signals.contacts_reached(
                message.platform, message.account, message.recipients, at
            )

    async def learn(self, platform: str, facts: list[Fact], at: datetime) -> None:
        if any(isinstance(f, Profile) for f in facts):
            self._names_known = True
        await self.store.signals.record_facts(platform, facts, at, source="backtest")

    async def close(self) -> None:
        await self.store.close()


def campaign_key(text: str, names: tuple[str, ...]) -> int:
    """Copies of one template share a key: the normalised text (template_reuse's own
    normalisation: links, numbers, handles, the recipient's names become placeholders),
    hashed to a signed 64-bit integer."""
    digest = xxhash.xxh64_intdigest(normalise(text, names).encode())
    return digest - (1 << 64) if digest >= (1 << 63) else digest


async def replay(
    spool: Spool,
    judges: list[Judge],
    accounts: Accounts,
    progress: Callable[[int], None] | None = None,
    part: int | None = None,
) -> Tally:
    """Judge every sent DM of the judged accounts with every judge (one per policy file),
    in time order; results go to the spool as run 0, 1, … With `part`, only the accounts
    of that part of the spool (`Spool.partition`)."""
    tally = Tally()
    named: set[tuple[str, str]] = set()
    done = 0
    for seq, record in spool.in_time_order(part):
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done)
        at = record.at
        if record.kind == "follow":
            followed = record.recipients[0]
            tally.follows += 1
            fact = Followed(account=followed, follower=record.sender, at=at)
            await _learn(judges, record.platform, [fact], at)
            continue
        seen = accounts.direction(record)
        if seen is None:
            tally.ignored += 1
            continue
        account, sent = seen
        facts: list[Fact] = []
        if record.sender_name and (record.platform, record.sender) not in named:
            named.add((record.platform, record.sender))
            facts.append(Profile(record.sender, (record.sender_name,)))
        if not sent:
            tally.received += 1
            facts.append(InboundMessage(account=account, sender=record.sender, at=at))
            await _learn(judges, record.platform, facts, at)
            continue
        tally.sent += 1
        if facts:
            await _learn(judges, record.platform, facts, at)
        await _judge_sent(spool, judges, seq, record, account)
    if progress is not None:
        progress(done)
    return tally


async def _learn(judges: list[Judge], platform: str, facts: list[Fact], at: datetime) -> None:
    for judge in judges:
        await judge.learn(platform, facts, at)


async def _judge_sent(
    spool: Spool, judges: list[Judge], seq: int, record: Record, account: str
) -> None:
    """One sent DM, judged by every policy file at its own time; the results spooled."""
    recipients = tuple(r for r in record.recipients if r != account) or record.recipients
    message = OutboundMessage(
        platform=record.platform,
        account=account,
        recipients=recipients,
        text=record.text,
        route=ROUTE,
        recipient_names=record.names,
    )
    campaign = campaign_key(record.text, record.names)
    for run, judge in enumerate(judges):
        decision = await judge.judge(message, record.at)
        if decision.action is Action.ALLOW:  # forwarded (shadow matches included)
            await judge.delivered(message, record.at)
        spool.add_result(
            run,
            Result(
                seq=seq,
                at=record.at,
                platform=record.platform,
                account=account,
                recipients=recipients,
                would=decision.would_action.value,
                taken=decision.action.value,
                matches=[m.as_dict() for m in decision.matches],
                campaign=campaign,
            ),
        )


def replay_partition(
    source: Path,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    part: int,
    counter: Any,
) -> None:
    """A replay worker's process: judge one partition of the accounts on its own stores,
    results into its own spool (merged by the parent), its tally as JSON beside it."""
    run_async(_replay_partition(source, workdir, policy_files, accounts, part, counter))


async def _replay_partition(
    source: Path,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    part: int,
    counter: Any,
) -> None:
    spool = Spool(workdir, source=source)
    judges: list[Judge] = []
    try:
        for i, policy_file in enumerate(policy_files):
            (workdir / f"run{i}").mkdir()
            judges.append(await StoreJudge.open(policy_file, workdir / f"run{i}"))

        def progress(n: int) -> None:
            counter.value = n

        tally = await replay(spool, judges, accounts, progress, part)
    finally:
        for judge in judges:
            await judge.close()
    spool.commit()
    spool.close()
    (workdir / "tally.json").write_text(json.dumps(asdict(tally)))
