"""The backtest's scratch file: every input record, read back in time order, and every
judged DM's result, aggregated for the report.

A temporary SQLite file through the standard library's `sqlite3`: exports are not sorted
(an X archive lists each conversation newest first) and may be far larger than memory, so
records are written here as they are read and replayed with `ORDER BY`. This is not
dmgate's store (that is `proxy.store`, an ephemeral one per replay, see `replay`); nothing
here is read by a policy.
"""

from __future__ import annotations

import ctypes
import heapq
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.backtest.accounts import scope_of
from proxy.backtest.inputs import Record

_SEP = "\x1f"  # recipients and names, joined: no id or name holds a unit separator
_BATCH = 5000
# A sent DM costs a replay a policy evaluation; a received message or a follow one fact.
_SENT_WEIGHT, _FACT_WEIGHT = 10, 1

_SCHEMA = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, platform TEXT NOT NULL,
    sender TEXT NOT NULL, recipients TEXT NOT NULL, text TEXT NOT NULL, names TEXT NOT NULL,
    sender_name TEXT NOT NULL, source TEXT NOT NULL, outbound INTEGER, unit INTEGER NOT NULL);
CREATE TABLE units (id INTEGER PRIMARY KEY, part INTEGER NOT NULL);
CREATE TABLE results (
    run INTEGER NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, platform TEXT NOT NULL,
    account TEXT NOT NULL, recipients TEXT NOT NULL, action TEXT NOT NULL, would TEXT NOT NULL,
    matches TEXT NOT NULL, campaign INTEGER NOT NULL,
    PRIMARY KEY (run, seq)) WITHOUT ROWID;
CREATE TABLE sent_to (
    seq INTEGER NOT NULL, platform TEXT NOT NULL, account TEXT NOT NULL,
    recipient TEXT NOT NULL, at REAL NOT NULL, campaign INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Result:
    """One judged DM, as the report needs it."""

    seq: int
    at: datetime
    platform: str
    account: str
    recipients: tuple[str, ...]
    would: str  # what would have happened (shadow matches count as their action)
    taken: str  # what the proxy would actually have done (enforced matches only)
    matches: list[dict[str, str]]
    campaign: int


class Spool:
    """`source`: read the records of another spool (a replay worker's view of the main
    one); this one then holds only the worker's results."""

    def __init__(self, directory: Path, source: Path | None = None) -> None:
        self.path = directory / "spool.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._records = "records"
        if source is not None:
            self._db.execute("ATTACH DATABASE ? AS src", (str(source),))
            self._records = "src.records"
        # The main spool's page cache serves the sort of every record by time and the
        # report's queries; a replay worker's only appends its results and keeps SQLite's
        # default (2 MB), where 16 MB filled in each worker in the first 100,000 results.
        cache = "cache_size=-2000" if source is not None else "cache_size=-16000"
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", cache):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._pending: list[tuple[Any, ...]] = []
        self._results: list[tuple[Any, ...]] = []
        self._sent: list[tuple[Any, ...]] = []
        self.records = 0
        # Records are grouped by the account they concern (`scope_of`), units numbered
        # in order of appearance, with the replay work each holds: see `partition`.
        self._units: dict[tuple[str, str | None], int] = {}
        self._weights: list[int] = []
        self._db.execute("BEGIN")

    # --- records --------------------------------------------------------------------

    def add(self, record: Record) -> None:
        self.records += 1
        key = (record.platform, scope_of(record))
        unit = self._units.get(key)
        if unit is None:
            unit = self._units[key] = len(self._weights)
            self._weights.append(0)
        sent = record.kind == "message" and record.outbound is not False
        self._weights[unit] += _SENT_WEIGHT if sent else _FACT_WEIGHT
        self._pending.append(
            (
                self.records,
                record.at.timestamp(),
                record.kind,
                record.platform,
                record.sender,
                _SEP.join(record.recipients),
                record.text,
                _SEP.join(record.names),
                record.sender_name,
                record.source,
                record.outbound,
                unit,
            )
        )
        if len(self._pending) >= _BATCH:
            self._flush_records()

    def _flush_records(self) -> None:
        self._db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", self._pending)
        self._pending.clear()

    def sealed(self) -> None:
        """All records are in: index them for the time-ordered replay."""
        self._flush_records()
        self._db.execute("CREATE INDEX records_time ON records (at, seq)")
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")

    def partition(self, parts: int, owners: Mapping[str, str]) -> list[int]:
        """Share the accounts among `parts` replay workers, the work (sent DMs above all)
        as even as it goes: the largest account first, each to the least loaded part. An
        export's messages go with the generic lines of its owner (`owners`, per platform):
        one account's facts must stay in one replay. Returns the work of each part."""
        accounts: dict[tuple[str, str | None], list[int]] = {}
        for (platform, scope), unit in self._units.items():
            account = scope if scope is not None else owners.get(platform)
            accounts.setdefault((platform, account), []).append(unit)
        loads = [(0, k) for k in range(parts)]
        work = [0] * parts
        part_of = [0] * len(self._weights)
        by_weight = sorted(
            accounts.items(),
            key=lambda item: (-sum(self._weights[u] for u in item[1]), min(item[1])),
        )
        for _, units in by_weight:
            load, k = heapq.heappop(loads)
            weight = sum(self._weights[u] for u in units)
            for unit in units:
                part_of[unit] = k
            work[k] += weight
            heapq.heappush(loads, (load + weight, k))
        self._db.execute("DELETE FROM units")
        self._db.executemany("INSERT INTO units VALUES (?, ?)", enumerate(part_of))
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        return work

    def release_memory(self) -> None:
        """Give the page cache back (up to 16 MB) while replay workers run: the records
        are in and partitioned, and this process only waits for the workers meanwhile.
        What the merge and the report read again comes from the file."""
        self._db.execute("PRAGMA shrink_memory")
        _malloc_trim()

    def in_time_order(self, part: int | None = None) -> Iterator[tuple[int, Record]]:
        """Every record (or those of one `part`, see `partition`), oldest first."""
        cur = self._db.cursor()  # its own cursor: results are written while it is read
        units = self._records.removesuffix("records") + "units"
        where, args = "", ()
        if part is not None:
            where, args = f" WHERE unit IN (SELECT id FROM {units} WHERE part = ?)", (part,)
        cur.execute(
            "SELECT seq, at, kind, platform, sender, recipients, text, names, sender_name,"
            f" source, outbound FROM {self._records}{where} ORDER BY at, seq",
            args,
        )
        for row in cur:
            seq, at, kind, platform, sender, recipients, text, names, sender_name, source, out = row
            yield (
                seq,
                Record(
                    at=datetime.fromtimestamp(at, UTC),
                    kind=kind,
                    platform=platform,
                    sender=sender,
                    recipients=tuple(recipients.split(_SEP)) if recipients else (),
                    text=text,
                    names=tuple(names.split(_SEP)) if names else (),
                    sender_name=sender_name,
                    source=source,
                    outbound=None if out is None else bool(out),
                ),
            )

    # --- results --------------------------------------------------------------------

    def add_result(self, run: int, result: Result) -> None:
        ts = result.at.timestamp()
        self._results.append(
            (
                run,
                result.seq,
                ts,
                result.platform,
                result.account,
                _SEP.join(result.recipients),
                result.taken,
                result.would,
                json.dumps(result.matches) if result.matches else "",
                result.campaign,
            )
        )
        if run == 0:
            self._sent.extend(
                (result.seq, result.platform, result.account, r, ts, result.campaign)
                for r in result.recipients
            )
        if len(self._results) >= _BATCH:
            self.flush_results()

    def flush_results(self) -> None:
        self._db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?)", self._results)
        self._db.executemany("INSERT INTO sent_to VALUES (?,?,?,?,?,?)", self._sent)
        self._results.clear()
        self._sent.clear()

    def commit(self) -> None:
        self.flush_results()
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")

    def merge(self, other: Path) -> None:
        """Take in a replay worker's results."""
        self.flush_results()
        self._db.execute("COMMIT")
        self._db.execute("ATTACH DATABASE ? AS part", (str(other),))
        self._db.execute("BEGIN")
        self._db.execute("INSERT INTO results SELECT * FROM part.results")
        self._db.execute("INSERT INTO sent_to SELECT * FROM part.sent_to")
        self._db.execute("COMMIT")
        self._db.execute("DETACH DATABASE part")
        self._db.execute("BEGIN")

    def finished(self) -> None:
        """Every run is in: index the results for the report's questions."""
        self.flush_results()
        for index in (
            "CREATE INDEX sent_to_pair ON sent_to (platform, account, recipient, at)",
            "CREATE INDEX sent_to_campaign ON sent_to (campaign, recipient)",
            "CREATE INDEX results_action ON results (run, would, seq)",
        ):
            self._db.execute(index)
        self._db.execute("COMMIT")

    # --- the report's questions ---------------------------------------------------------

    def counts(self, run: int) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT would, COUNT(*) FROM results WHERE run = ? GROUP BY would", (run,)
        )
        return dict(rows.fetchall())

    def taken_counts(self, run: int) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT action, COUNT(*) FROM results WHERE run = ? GROUP BY action", (run,)
        )
        return dict(rows.fetchall())

    def policy_matches(self, run: int) -> dict[str, dict[str, int]]:
        """policy → {action: matches}."""
        out: dict[str, dict[str, int]] = {}
        cur = self._db.execute(
            "SELECT matches FROM results WHERE run = ? AND matches != ''", (run,)
        )
        for (matches,) in cur:
            for m in json.loads(matches):
                by_action = out.setdefault(m["policy"], {})
                by_action[m["action"]] = by_action.get(m["action"], 0) + 1
        return out

    def decisions(self, run: int) -> list[tuple[str, str]]:
        """(what would have happened, what the proxy would have done) per judged DM, in
        input order."""
        rows = self._db.execute(
            "SELECT would, action FROM results WHERE run = ? ORDER BY seq", (run,)
        )
        return rows.fetchall()

    def by_day(self, run: int) -> list[tuple[str, dict[str, int]]]:
        rows = self._db.execute(
            "SELECT date(at, 'unixepoch') AS day, would, COUNT(*) FROM results WHERE run = ?"
            " GROUP BY day, would ORDER BY day",
            (run,),
        )
        days: dict[str, dict[str, int]] = {}
        for day, would, n in rows:
            days.setdefault(day, {})[would] = n
        return list(days.items())

    def follow_to_dm_seconds(self) -> Iterator[float]:
        """For each follow followed by a DM from the followed account to the follower: the
        seconds from the follow to the first such DM."""
        return (
            row[0]
            for row in self._db.execute(
                """
                SELECT MIN(s.at) - f.at FROM records f
                JOIN sent_to s ON s.platform = f.platform AND s.account = f.recipients
                    AND s.recipient = f.sender AND s.at >= f.at
                WHERE f.kind = 'follow'
                GROUP BY f.seq
                """
            )
        )

    def top_campaigns(self, runs: Iterable[int], limit: int = 10) -> list[dict[str, Any]]:
        runs = list(runs)
        rows = self._db.execute(
            """
            SELECT campaign, COUNT(DISTINCT recipient) AS people, COUNT(DISTINCT seq) AS dms
            FROM sent_to GROUP BY campaign HAVING COUNT(DISTINCT seq) > 1
            ORDER BY people DESC, dms DESC, MIN(seq) LIMIT ?
            """,
            (limit,),
        ).fetchall()
        # Their decisions in one pass over the results per run, not one per campaign.
        decided: dict[tuple[int, int], dict[str, int]] = {}
        listed = [campaign for campaign, _, _ in rows]
        for run in runs:
            for campaign in listed:
                decided[run, campaign] = {}
            for campaign, would, n in self._db.execute(
                f"SELECT campaign, would, COUNT(*) FROM results WHERE run = ?"
                f" AND campaign IN ({','.join('?' * len(listed))}) GROUP BY campaign, would",
                (run, *listed),
            ):
                decided[run, campaign][would] = n
        out = []
        for campaign, people, messages in rows:
            examples = [
                t
                for (t,) in self._db.execute(
                    "SELECT r.text FROM sent_to s JOIN records r ON r.seq = s.seq"
                    " WHERE s.campaign = ? GROUP BY r.text ORDER BY MIN(s.seq) LIMIT 3",
                    (campaign,),
                )
            ]
            text = examples[0] if examples else ""
            decisions = {run: decided[run, campaign] for run in runs}
            out.append(
                {
                    "campaign": f"{campaign & 0xFFFFFFFFFFFFFFFF:016x}",
                    "recipients": people,
                    "messages": messages,
                    "text": text,
                    "examples": examples or [text],
                    "decisions": decisions,
                }
            )
        return out

    def flagged(self, run: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Held and blocked DMs (what would have happened), oldest first, up to `limit`,
        with their total."""
        total = self._db.execute(
            "SELECT COUNT(*) FROM results WHERE run = ? AND would != 'allow'", (run,)
        ).fetchone()[0]
        rows = self._db.execute(
            """
            SELECT r.seq, r.at, r.platform, r.account, r.recipients, r.would, r.action,
                   r.matches, c.text, c.source
            FROM results r JOIN records c ON c.seq = r.seq
            WHERE r.run = ? AND r.would != 'allow' ORDER BY r.seq LIMIT ?
            """,
            (run, limit),
        )
        return total, [_row(row) for row in rows]

    def changes(self, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """DMs whose outcome differs between run 0 and run 1."""
        where = (
            "FROM results a JOIN results b ON b.run = 1 AND b.seq = a.seq"
            " WHERE a.run = 0 AND a.would != b.would"
        )
        total = self._db.execute(f"SELECT COUNT(*) {where}").fetchone()[0]
        rows = self._db.execute(
            f"""
            SELECT a.seq, a.at, a.platform, a.account, a.recipients, a.would, b.would,
                   a.matches, b.matches, c.text, c.source
            {where.replace("WHERE", "JOIN records c ON c.seq = a.seq WHERE")}
            ORDER BY a.seq LIMIT ?
            """,
            (limit,),
        )
        out = []
        for seq, at, platform, account, recipients, before, after, m_a, m_b, text, source in rows:
            out.append(
                {
                    "seq": seq,
                    "at": datetime.fromtimestamp(at, UTC),
                    "platform": platform,
                    "account": account,
                    "recipients": recipients.split(_SEP),
                    "before": before,
                    "after": after,
                    "reasons_before": [m["reason"] for m in json.loads(m_a)] if m_a else [],
                    "reasons_after": [m["reason"] for m in json.loads(m_b)] if m_b else [],
                    "text": text,
                    "source": source,
                }
            )
        return total, out

    def close(self) -> None:
        self._db.close()


def _malloc_trim() -> None:
    """glibc keeps freed memory in the middle of its heap (where SQLite's cache pages sat
    among Python's objects) unless asked to return it; elsewhere nothing happens."""
    if sys.platform != "linux":
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, at, platform, account, recipients, would, taken, matches, text, source = row
    parsed = json.loads(matches) if matches else []
    return {
        "seq": seq,
        "at": datetime.fromtimestamp(at, UTC),
        "platform": platform,
        "account": account,
        "recipients": recipients.split(_SEP),
        "action": would,
        "taken": taken,
        "policies": [m["policy"] for m in parsed],
        "reasons": [m["reason"] for m in parsed],
        "shadow": any(m["mode"] == "shadow" for m in parsed),
        "text": text,
        "source": source,
    }
