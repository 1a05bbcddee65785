"""Policy decision latency as the template index grows, and dmgate's memory at 1M.

    python bench/decision.py                 # 10k, 100k, 1M indexed messages
    python bench/decision.py --levels 10000 100000

For each level the store (SQLite, the embedded default) is filled with that many indexed
DMs — distinct texts from 1,000 sending accounts, each its own template: the worst case for
index size; a quarter carry a link, so their embeddings and meaning keys are indexed too —
then the real engine (follow_timing + template_reuse) judges probe DMs through
the real store-backed signals: half are edited copies of indexed messages (a candidate hit
and signature comparisons), half are new texts (half of those with a link). Printed:
p50/p99 decision latency per level and its ratio to the smallest level (flat = ~1.0x), the
decision's CPU time on its thread (SQLite's work included; PostgreSQL's server not) — the
figure other load on the cores disturbs least —, its p50/p99 by kind of probe (edited
copy, new text, new text with a link: the last starts a template and writes the most keys,
and sets the p99), the database size, and the resident memory of a real `dmgate serve`
process judging DMs against the 1M index.

Texts are words of the SMS Spam Collection (`$DMGATE_SMS_CORPUS`, or
../shared/data/sms-spam-collection/ beside the repository); without it the benchmark stops
rather than judge made-up words, which cost half as much.

Filling uses bulk SQL inserts of real fingerprints (the same rows the store writes per DM)
because a million DMs through HTTP would take most of an hour. On PostgreSQL the load is
then vacuumed and checkpointed, so the probes meet a server at rest, not one writing out
gigabytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from policies.config import parse_policies  # noqa: E402
from policies.engine import Engine  # noqa: E402
from policies.model import OutboundMessage  # noqa: E402
from policies.template_reuse import fingerprint  # noqa: E402
from proxy.store import Store  # noqa: E402
from proxy.store.database import Database  # noqa: E402

ACCOUNTS = 1000
POLICIES = """
mode: enforce
policies:
  follow_timing: {action: hold, window: 1h}
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
"""
CORPUS = Path(
    os.environ.get(
        "DMGATE_SMS_CORPUS", REPO.parent / "shared/data/sms-spam-collection/SMSSpamCollection.tsv"
    )
)


def vocabulary() -> list[str]:
    """The SMS corpus's words: DMs of real words. Never a stand-in: texts of made-up words
    ("w123") are shorter and cost half as much to judge, so a run from a checkout without
    the corpus beside it (a worktree in /tmp, for an A/B) would compare unlike workloads."""
    try:
        lines = CORPUS.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    except FileNotFoundError:
        sys.exit(f"bench/decision.py: no SMS corpus at {CORPUS}; set DMGATE_SMS_CORPUS")
    return sorted({w for line in lines for w in line.split("\t", 1)[-1].split() if w.isalpha()})


VOCAB = vocabulary()


def text_for(i: int) -> str:
    rnd = random.Random(i)
    return " ".join(rnd.choice(VOCAB) for _ in range(32))


def with_link(text: str, n: int) -> str:
    """A quarter of the DMs (n % 4 == 0) carry a link: their embedding is computed and
    its meaning keys looked up and indexed too."""
    return text + f" https://offer{n % 7}.example.com/?r={n}" if n % 4 == 0 else text


Row = tuple[int, tuple[int, ...], bytes, int, tuple[int, ...], bytes, bytes | None]


def _rows(start: int, stop: int) -> list[Row]:
    """Per message: its band keys, signature, text key, the keys the latest template
    claims (loose and meaning), campaign features and embedding, as template_reuse
    computes them."""
    out = []
    for i in range(start, stop):
        fp = fingerprint(with_link(text_for(i), i), scope=f"x:acct{i % ACCOUNTS}")
        assert fp is not None
        claimed = fp.loose_keys + fp.meaning_keys
        meaning = fp.meaning or None
        out.append((i, fp.band_keys, fp.signature, fp.text_key, claimed, fp.features, meaning))
    return out


def fill(url: str, start: int, stop: int, pool: ProcessPoolExecutor) -> None:
    """Index messages [start, stop) exactly as StoreSignals would: template, bands,
    signature, recipient."""
    if url.startswith("postgresql"):
        asyncio.run(fill_pg(url, start, stop, pool))
        return
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    now = time.time()
    # Probe DMs of earlier levels added templates too: continue after the highest id.
    base = con.execute("SELECT coalesce(max(id), 0) FROM templates").fetchone()[0] + 1
    step = 20000
    chunks = [(a, min(a + step, stop)) for a in range(start, stop, step)]
    for rows in pool.map(_rows, *zip(*chunks, strict=True)):
        con.executemany(
            "INSERT INTO templates (id, platform, account, first_seen) VALUES (?, 'x', ?, ?)",
            [(base + i, f"acct{i % ACCOUNTS}", now) for i, *_ in rows],
        )
        con.executemany(
            "INSERT OR IGNORE INTO lsh_bands (key, template_id) VALUES (?, ?)",
            [(k, base + i) for i, keys, *_ in rows for k in keys],
        )
        con.executemany(  # loose and meaning keys: the latest template takes them
            "INSERT OR REPLACE INTO lsh_bands (key, template_id) VALUES (?, ?)",
            [(k, base + i) for i, _k, _s, _t, claimed, *_ in rows for k in claimed],
        )
        con.executemany(
            "INSERT INTO template_signatures (template_id, text_key, signature, features,"
            " meaning) VALUES (?,?,?,?,?)",
            [(base + i, t, s, f, m) for i, _k, s, t, _c, f, m in rows],
        )
        con.executemany(
            "INSERT INTO template_recipients (template_id, recipient, last_seen) VALUES (?, ?, ?)",
            [(base + i, str(10_000_000 + i), now) for i, *_ in rows],
        )
        con.commit()
    # As for PostgreSQL below: a deployment's 1M DMs came over days, while right after this
    # load the OS may still be writing gigabytes out beside the probes. The WAL is copied
    # back and the page cache written out first. (On a slow VM it changed little: 1M wall
    # p99 17 ms before, 22 ms after, the decision's CPU p99 7-8 ms either way.)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    os.sync()


async def fill_pg(url: str, start: int, stop: int, pool: ProcessPoolExecutor) -> None:
    import asyncpg

    con = await asyncpg.connect(url)
    now = time.time()
    base = await con.fetchval("SELECT coalesce(max(id), 0) FROM templates") + 1
    step = 20000
    chunks = [(a, min(a + step, stop)) for a in range(start, stop, step)]
    for rows in pool.map(_rows, *zip(*chunks, strict=True)):
        async with con.transaction():
            await con.copy_records_to_table(
                "templates",
                columns=["id", "platform", "account", "first_seen"],
                records=[(base + i, "x", f"acct{i % ACCOUNTS}", now) for i, *_ in rows],
            )
            await con.execute(
                "CREATE TEMP TABLE IF NOT EXISTS bands_in "
                "(key bigint, template_id bigint) ON COMMIT DELETE ROWS"
            )
            await con.copy_records_to_table(
                "bands_in", records=[(k, base + i) for i, keys, *_ in rows for k in keys]
            )
            await con.execute("INSERT INTO lsh_bands SELECT * FROM bands_in ON CONFLICT DO NOTHING")
            await con.execute("TRUNCATE bands_in")
            await con.copy_records_to_table(
                "bands_in",
                records=[(k, base + i) for i, _k, _s, _t, claimed, *_ in rows for k in claimed],
            )
            await con.execute(
                "INSERT INTO lsh_bands SELECT DISTINCT ON (key) * FROM bands_in "
                "ORDER BY key, template_id DESC "
                "ON CONFLICT (key) DO UPDATE SET template_id = excluded.template_id"
            )
            await con.copy_records_to_table(
                "template_signatures",
                columns=["template_id", "text_key", "signature", "features", "meaning"],
                records=[(base + i, t, s, f, m) for i, _k, s, t, _c, f, m in rows],
            )
            await con.copy_records_to_table(
                "template_recipients",
                columns=["template_id", "recipient", "last_seen"],
                records=[(base + i, str(10_000_000 + i), now) for i, *_ in rows],
            )
    await con.execute(
        "SELECT setval(pg_get_serial_sequence('templates', 'id'), (SELECT max(id) FROM templates))"
    )
    # A deployment holding 1M indexed DMs gathered them over days, its autovacuum and
    # checkpoints keeping up. Right after a bulk load of ~37M index rows the server and the
    # OS are still writing them out beside the probes (1M: p99 6.2 ms, against 4.5-4.9 ms
    # on databases at rest), so the load's maintenance is done first, as it would be.
    await con.execute("VACUUM (ANALYZE)")
    try:
        await con.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        print("  (no CHECKPOINT: the role may not; the server writes the load out meanwhile)")
    await con.close()


def db_size_mib(url: str, tmp: Path) -> float:
    if url.startswith("postgresql"):
        import asyncpg

        async def size() -> int:
            con = await asyncpg.connect(url)
            try:
                return await con.fetchval("SELECT pg_database_size(current_database())")
            finally:
                await con.close()

        return asyncio.run(size()) / 2**20
    return sum(p.stat().st_size for p in tmp.glob("bench.db*")) / 2**20


def edited_copy(text: str, rnd: random.Random) -> str:
    words = text.split()
    for _ in range(2):
        words[rnd.randrange(len(words))] = rnd.choice(VOCAB)
    return " ".join(words)


# The probe kinds, by what a decision has to do for them.
EDITED, NEW, NEW_LINKED = "an edited copy", "a new text", "a new text with a link"


async def measure(
    url: str, indexed: int, probes: int
) -> tuple[list[float], list[float], list[str]]:
    """Per probe DM after the warm-up: wall seconds, this thread's CPU seconds, and the
    probe's kind (EDITED, NEW or NEW_LINKED)."""
    store = Store(Database(url))
    checkpoints = asyncio.create_task(store.db.checkpoint_loop())  # as `dmgate serve` runs
    engine = Engine.from_loaded(parse_policies(POLICIES))
    # As `dmgate serve` does once started (proxy/app.py): what is loaded lives for the
    # whole run, out of the garbage collector's full passes.
    gc.collect()
    gc.freeze()
    rnd = random.Random(indexed)
    now = datetime.now(UTC) + timedelta(seconds=1)
    latencies, cpu, kinds = [], [], []
    for n in range(probes):
        if n % 2:
            i = rnd.randrange(indexed)
            text, account = edited_copy(text_for(i), rnd), f"acct{i % ACCOUNTS}"
        else:
            i = 50_000_000 + indexed + n
            text, account = text_for(i), f"acct{i % ACCOUNTS}"
        text = with_link(text, n)
        msg = OutboundMessage("x", account, (str(90_000_000 + n),), text, route="x")
        c0, t0 = time.thread_time(), time.perf_counter()
        await engine.evaluate(msg, store.signals, now)
        latencies.append(time.perf_counter() - t0)
        # The decision's own CPU (SQLite runs on this thread): what other load on the
        # cores disturbs least, unlike the wall time's tail.
        cpu.append(time.thread_time() - c0)
        kinds.append(EDITED if n % 2 else NEW_LINKED if n % 4 == 0 else NEW)
    checkpoints.cancel()
    await store.close()
    gc.unfreeze()
    warm = probes // 10  # dropped: the warm-up
    return latencies[warm:], cpu[warm:], kinds[warm:]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000


def dmgate_rss(url: str, home: Path) -> tuple[float, float]:
    """VmRSS and VmHWM (MiB) of a real `dmgate serve` after judging 500 DMs on this DB."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not 500 request lines
    sys.path.insert(0, str(REPO))
    from tests.fakes.x_upstream import FakeXThread
    from tests.support import free_port, wait_until

    port = free_port()
    policy = home / "policies.yaml"
    policy.write_text(POLICIES)
    with FakeXThread() as fx:
        # Each sending account has its own token, which dmgate identifies with X once.
        for k in range(ACCOUNTS):
            fx.state.add_user(str(9_000 + k), token=f"bench-token-{k}")
        env = {
            **os.environ,
            "DMGATE_PORT": str(port),
            "DMGATE_DATABASE_URL": url,
            "DMGATE_POLICY_FILE": str(policy),
            "DMGATE_REVIEW_TOKENS": "bench:bench-token-0123456789abcdef",
            "DMGATE_LOG_LEVEL": "warning",
            "DMGATE_ROUTES": json.dumps({"x": {"upstream": fx.url, "platform": "x"}}),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve"],
            env=env,
            cwd=home,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, timeout=60)
            with httpx.Client(base_url=url) as c:
                for n in range(500):
                    c.post(
                        f"/x/2/dm_conversations/with/{70_000_000 + n}/messages",
                        json={"text": text_for(n)},
                        headers={"Authorization": f"Bearer bench-token-{n % ACCOUNTS}"},
                    )
            status = Path(f"/proc/{proc.pid}/status").read_text()
            fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
            kib = {k: int(v.split()[0]) for k, v in fields.items() if v.strip().endswith("kB")}
            return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--probes", type=int, default=3000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument(
        "--pg-dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server on which a fresh database is created (and dropped)",
    )
    args = ap.parse_args()
    print("command:", " ".join(["python", "bench/decision.py", *sys.argv[1:]]))
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(2) as pool:
        if args.backend == "postgresql":
            from tests import pg

            pg.ADMIN_DSN = args.pg_dsn
            db = pg.create_database()
        else:
            db = f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            run_levels(db, Path(tmp), args, pool)
        finally:
            if args.backend == "postgresql":
                pg.drop_database(db)


def run_levels(db: str, tmp: Path, args: argparse.Namespace, pool: ProcessPoolExecutor) -> None:
    asyncio.run(_migrate(db))
    results = []
    indexed = 0
    for level in sorted(args.levels):
        t0 = time.time()
        fill(db, indexed, level, pool)
        indexed = level
        lat, cpu, kinds = asyncio.run(measure(db, indexed, args.probes))
        size = db_size_mib(db, tmp)
        results.append((level, pct(lat, 50), pct(lat, 99), pct(cpu, 50), pct(cpu, 99), size))
        print(
            f"  indexed {level:>9,}: filled in {time.time() - t0:6.1f}s, "
            f"decision p50 {results[-1][1]:.3f} ms, p99 {results[-1][2]:.3f} ms, "
            f"db {size:,.0f} MiB",
            flush=True,
        )
        # Where the tail comes from: a new text starts a template and writes its keys.
        by_kind = {
            k: [c for c, kk in zip(cpu, kinds, strict=True) if kk == k]
            for k in (EDITED, NEW, NEW_LINKED)
        }
        print(
            "    CPU p50/p99 ms by probe: "
            + ", ".join(f"{k} {pct(v, 50):.2f}/{pct(v, 99):.2f}" for k, v in by_kind.items()),
            flush=True,
        )
    base = results[0]
    print(
        "\nlevel        p50 ms  p99 ms  p50 vs first  p99 vs first  CPU p50 ms  CPU p99 ms  db MiB"
    )
    for level, p50, p99, cpu50, cpu99, size in results:
        print(
            f"{level:>10,}  {p50:6.3f}  {p99:6.3f}  {p50 / base[1]:11.2f}x  "
            f"{p99 / base[2]:11.2f}x  {cpu50:10.3f}  {cpu99:10.3f}  {size:7,.0f}"
        )
    print("(CPU: the decision's own, on its thread; the wall p99 also holds what else ran)")
    rss, hwm = dmgate_rss(db, tmp)
    print(
        f"\ndmgate serve at {indexed:,} indexed messages: RSS {rss:.0f} MiB "
        f"(peak {hwm:.0f} MiB) after judging 500 DMs — the index lives in the store, "
        "not in memory"
    )


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()


if __name__ == "__main__":
    main()
