"""Judged-DM throughput of one `dmgate serve` with 1, 2, … workers, in one run: is it worth
more processes on this store? (The choice of DMGATE_WORKERS' default was made with it.)

    python bench/dm_throughput.py                         # SQLite, --workers 1,2
    python bench/dm_throughput.py --backend postgresql --workers 1,2,4

Every DM after an account's first is the same text to a new recipient, so the template
policy holds it: each answer is a durable hold (sealed request, decision record, template
index update), the heaviest write a DM makes. The client (aiohttp, --concurrency
connections) shares the machine's cores with dmgate, as in bench/passthrough.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replicas import load, start_replica  # noqa: E402
from tests import pg  # noqa: E402
from tests.fakes.x_upstream import FakeXThread  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (1,2)")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--accounts", type=int, default=20)
    args = ap.parse_args()
    print("command: python bench/dm_throughput.py " + " ".join(sys.argv[1:]))
    rows = []
    with FakeXThread() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.state.record = False
        for i, n in enumerate(int(w) for w in args.workers.split(",")):
            home = Path(tmp) / f"w{n}"
            home.mkdir()
            url = pg.create_database() if args.backend == "postgresql" else None
            proc, base = start_replica(
                url or f"sqlite:///{home / 'dmgate.db'}", fake.url, home, workers=n
            )
            try:
                held, lat = asyncio.run(
                    load([base], args.seconds, args.concurrency, (i + 1) * 10**8, args.accounts)
                )
            finally:
                proc.terminate()
                proc.wait(30)
                if url:
                    pg.drop_database(url)
            q = statistics.quantiles(lat, n=100)
            rows.append((n, held / args.seconds, q[49] * 1000, q[98] * 1000))
            print(
                f"  {n} worker(s) on {args.backend}: {rows[-1][1]:,.0f} held DMs/s, "
                f"p50 {rows[-1][2]:.1f} ms, p99 {rows[-1][3]:.1f} ms",
                flush=True,
            )
    base_rate = rows[0][1]
    for n, rate, _, _ in rows[1:]:
        print(f"{n} workers / {rows[0][0]}: {rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
