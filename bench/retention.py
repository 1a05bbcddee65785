"""Database size under a sustained stream of DMs, with retention on and (baseline) off.

    python bench/retention.py                    # SQLite, ~2.5 minutes
    python bench/retention.py --backend postgresql --seconds 60

A real `dmgate serve` judges a steady stream of distinct DMs (every one a new template from
one of 10 accounts, so the index grows as fast as it can) with policy windows of 15 s and
a retention margin of 5 s, pruning every 2 s. The same stream runs again with retention
switched off. Printed every 10 s: rows in the template index and decision records, and the
space the store uses (SQLite: pages in use; PostgreSQL: table + index bytes). With
retention the figures level off once the stream is older than window + margin; without,
they grow with the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import pg  # noqa: E402
from tests.fakes.x_upstream import FakeXThread  # noqa: E402
from tests.support import free_port, wait_until  # noqa: E402

POLICY = """
policies:
  follow_timing: {action: hold, window: 15s}
  template_reuse: {action: hold, min_recipients: 3, window: 15s}
"""
TABLES = ("lsh_bands", "templates", "template_signatures", "template_recipients", "decisions")


def usage(url: str) -> tuple[float, dict[str, int]]:
    """(MiB used, row counts)."""
    q = {t: f"SELECT count(*) FROM {t}" for t in TABLES}
    if url.startswith("sqlite"):
        con = sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)
        try:
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            free = con.execute("PRAGMA freelist_count").fetchone()[0]
            size = con.execute("PRAGMA page_size").fetchone()[0]
            return (pages - free) * size / 2**20, {
                t: con.execute(s).fetchone()[0] for t, s in q.items()
            }
        finally:
            con.close()
    import asyncpg

    async def read() -> tuple[float, dict[str, int]]:
        con = await asyncpg.connect(url)
        try:
            size = await con.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relname = ANY($1::text[])",
                list(TABLES),
            )
            return size / 2**20, {t: await con.fetchval(s) for t, s in q.items()}
        finally:
            await con.close()

    return asyncio.run(read())


async def stream(base: str, seconds: float, concurrency: int) -> int:
    sent = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal sent
        rnd = random.Random(w)
        while time.monotonic() < deadline:
            # Pseudo-words: every DM is its own template, the index grows as fast as it can.
            text = " ".join(
                "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
                for _ in range(20)
            )
            rid = rnd.randrange(10**12)
            async with session.post(
                f"{base}/x/2/dm_conversations/with/{rid}/messages",
                json={"text": text},
                # OAuth 1.0a tokens name their user: verified senders without a lookup.
                headers={
                    "Authorization": f'OAuth oauth_consumer_key="b", oauth_token="{w % 10}-b"'
                },
            ) as r:
                await r.read()
            sent += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
    return sent


def run(url: str, upstream: str, home: Path, retention: bool, seconds: float) -> list[str]:
    port = free_port()
    (home / "policies.yaml").write_text(POLICY)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")},
        "DMGATE_PORT": str(port),
        "DMGATE_DATABASE_URL": url,
        "DMGATE_POLICY_FILE": str(home / "policies.yaml"),
        "DMGATE_ROUTES": json.dumps({"x": {"upstream": upstream, "platform": "x"}}),
        "DMGATE_REVIEW_TOKENS": "bench:bench-token-0123456789abcdef",
        "DMGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "DMGATE_LOG_LEVEL": "warning",
        "DMGATE_RETENTION_MARGIN": "5s",
        "DMGATE_RETENTION_INTERVAL": "2s" if retention else "1000d",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve"], env=env, cwd=home, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    lines = []
    try:
        import httpx

        wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, timeout=60)
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(asyncio.run(stream(base, seconds, 8))))
        start = time.monotonic()
        t.start()
        while t.is_alive():
            t.join(timeout=10)
            mib, rows = usage(url)
            lines.append(
                f"{time.monotonic() - start:5.0f}s  {mib:8.2f} MiB  "
                + "  ".join(f"{k}={v:,}" for k, v in rows.items())
            )
            print(
                ("  retention on " if retention else "  retention off") + "  " + lines[-1],
                flush=True,
            )
        lines.append(f"{result[0]:,} DMs judged")
    finally:
        proc.terminate()
        proc.wait(30)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=70)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()
    print("command: python bench/retention.py " + " ".join(sys.argv[1:]))
    sizes = {}
    with FakeXThread() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.state.record = False
        for retention in (True, False):
            home = Path(tmp) / ("on" if retention else "off")
            home.mkdir()
            url = (
                pg.create_database()
                if args.backend == "postgresql"
                else f"sqlite:///{home / 'dmgate.db'}"
            )
            try:
                run(url, fake.url, home, retention, args.seconds)
                sizes[retention] = usage(url)[0]
            finally:
                if args.backend == "postgresql":
                    pg.drop_database(url)
    print(
        f"\nstore size after {args.seconds:.0f} s: retention on {sizes[True]:.2f} MiB, "
        f"off {sizes[False]:.2f} MiB ({sizes[True] / sizes[False]:.2f}x)"
    )


if __name__ == "__main__":
    main()
