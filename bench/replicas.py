"""Held-DM throughput with 1 and 3 dmgate replicas on one PostgreSQL, in one run.

    python bench/replicas.py                     # ~1 minute
    python bench/replicas.py --seconds 20 --concurrency 64

A fresh PostgreSQL database (on --pg-dsn's server) and the fake X upstream on loopback;
every DM after the first is the same text to a new recipient, so the template policy
holds it: each answer is a durable hold (request stored with sealed credentials, decision
record, template index update). The client spreads requests round-robin over the
replicas. Printed: holds/s and latency p50/p99 per replica count, and the ratio. All
processes share this machine's cores, so 3 replicas measure contention on one database,
not three machines' worth of capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import pg  # noqa: E402
from tests.fakes.x_upstream import FakeXThread  # noqa: E402
from tests.support import free_port, wait_until  # noqa: E402

POLICY = "policies:\n  template_reuse: {action: hold, min_recipients: 2, window: 24h}\n"
TEXT = "Thanks for the follow! I built Rocketly for founders like you, join us: https://r.example"


def start_replica(
    url: str, upstream: str, home: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
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
        "DMGATE_LOG_FORMAT": "json",
        "DMGATE_WORKERS": str(workers),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve"], env=env, cwd=home, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, timeout=60)
    return proc, base


async def load(
    bases: list[str], seconds: float, concurrency: int, start_id: int, accounts: int
) -> tuple[int, list[float]]:
    held = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    counter = iter(range(start_id, start_id + 10_000_000))

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal held
        n = 0
        while time.monotonic() < deadline:
            rid = next(counter)
            base = bases[(w + n) % len(bases)]
            # OAuth 1.0a tokens name their user: verified senders without a lookup.
            token = f"{100 + rid % accounts}-bench"
            headers = {"Authorization": f'OAuth oauth_consumer_key="bench", oauth_token="{token}"'}
            n += 1
            t0 = time.perf_counter()
            async with session.post(
                f"{base}/x/2/dm_conversations/with/{rid}/messages",
                json={"text": TEXT},
                headers=headers,
            ) as r:
                await r.read()
                if r.headers.get("DMGate-Decision") == "hold":
                    held += 1
                    latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
    return held, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--accounts",
        type=int,
        default=20,
        help="sending accounts (one account's template index is changed by "
        "one transaction at a time)",
    )
    ap.add_argument("--pg-dsn", default=pg.ADMIN_DSN)
    args = ap.parse_args()
    pg.ADMIN_DSN = args.pg_dsn
    print("command: python bench/replicas.py " + " ".join(sys.argv[1:]))
    rows = []
    with FakeXThread() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.state.record = False
        for n in (1, 3):
            url = pg.create_database()
            procs = []
            try:
                for i in range(n):
                    home = Path(tmp) / f"r{n}-{i}"
                    home.mkdir()
                    procs.append(start_replica(url, fake.url, home))
                held, lat = asyncio.run(
                    load(
                        [b for _, b in procs],
                        args.seconds,
                        args.concurrency,
                        n * 10**8,
                        args.accounts,
                    )
                )
                q = statistics.quantiles(lat, n=100)
                rows.append((n, held / args.seconds, q[49] * 1000, q[98] * 1000))
                print(
                    f"  {n} replica(s): {rows[-1][1]:,.0f} holds/s, p50 {rows[-1][2]:.1f} ms,"
                    f" p99 {rows[-1][3]:.1f} ms",
                    flush=True,
                )
            finally:
                for proc, _ in procs:
                    proc.terminate()
                    proc.wait(30)
                pg.drop_database(url)
    print(
        f"\n{os.cpu_count()} CPUs, concurrency {args.concurrency}, {args.accounts} sending "
        f"accounts, {args.seconds:.0f} s each"
    )
    print("replicas  holds/s  p50 ms  p99 ms")
    for n, rate, p50, p99 in rows:
        print(f"{n:>8}  {rate:7,.0f}  {p50:6.1f}  {p99:6.1f}")
    print(f"3 replicas / 1 replica: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
