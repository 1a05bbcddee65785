"""Review inbox page times with 10,000 pending holds (SQLite, in-process server).

Fills a fresh store with N pending holds (two platforms, five sending accounts, a third of
them copies of 20 campaigns, every recipient with a profile), serves the real application
on loopback, signs in and times the pages a reviewer loads: the first inbox page, a page
deep in the cursor chain, a filtered page, a hold's page and the live poll.

    python bench/review_inbox.py            # 10,000 holds
    python bench/review_inbox.py --holds 50000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from aiohttp import web

from proxy.app import build_app
from proxy.context import CTX
from proxy.settings import Settings
from proxy.store.holds import NewHold, add_hold
from proxy.store.tables import profiles

TOKEN = "bench-review-token-0123456789abcdef"


def fill(url: str, n: int) -> list[str]:
    engine = sa.create_engine(url)
    now = datetime.now(UTC) - timedelta(hours=1)
    ids = []
    with engine.begin() as conn:
        for i in range(n):
            campaign = f"c{i % 20:02d}" if i % 3 == 0 else None
            hold_id = f"{int((now.timestamp() + i / 1000) * 1000):012x}{i:020x}"
            ids.append(hold_id)
            add_hold(
                conn,
                NewHold(
                    id=hold_id,
                    platform="x" if i % 4 else "mastodon",
                    route="x",
                    account=f"10{i % 5}",
                    recipients=[str(100000 + i)],
                    text=f"Thanks for the follow, person {i}! Have a look at https://p.example/{i}",
                    policies=[
                        {
                            "policy": "template_reuse" if campaign else "follow_timing",
                            "action": "hold",
                            "mode": "enforce",
                            "reason": f"recipient {100000 + i} followed 40s ago",
                        }
                    ],
                    dedupe_key=f"{i:064x}",
                    request_sealed=b"x",
                    response_status=201,
                    response_content_type="application/json",
                    response_headers={},
                    response_body=b"{}",
                    created_at=now + timedelta(milliseconds=i),
                    expires_at=now + timedelta(days=3),
                    template_id=campaign,
                    policy_names=" template_reuse " if campaign else " follow_timing ",
                ),
            )
        conn.execute(
            sa.insert(profiles),
            [
                {
                    "platform": "x" if i % 4 else "mastodon",
                    "user_id": str(100000 + i),
                    "names": [f"Person {i}", f"p{i}"],
                    "username": f"p{i}",
                    "name": f"Person {i}",
                    "description": "Builds things",
                    "location": "Lisbon",
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
    engine.dispose()
    return ids


async def timed(client: httpx.AsyncClient, url: str, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        r = await client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def main(n: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'dmgate.db'}"
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            secret_key="bench-secret-key-0123456789",
            review_tokens=f"bench:{TOKEN}",
            log_format="json",
            log_level="warning",
        )
        app = build_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()  # migrates
        ids = await asyncio.to_thread(fill, url.replace("sqlite:", "sqlite+pysqlite:"), n)
        app[CTX].metrics.holds_pending.set(n)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
            page = await client.get("/review/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            await client.post("/review/signin", data={"csrf": csrf, "token": TOKEN})
            pages = {
                "inbox, first page": "/review/inbox",
                "inbox, page 150 (cursor)": f"/review/inbox?cursor={ids[150 * 50]}",
                "inbox, newest first": "/review/inbox?order=newest",
                "inbox, one campaign": "/review/inbox?campaign=c07",
                "inbox, one account + policy": "/review/inbox?account=103&policy=follow_timing",
                "hold page (campaign copy)": f"/review/holds/{ids[n // 2 - (n // 2) % 3]}",
                "live poll": "/review/live",
            }
            print(f"{n} pending holds, SQLite, {runs} loads each")
            print(f"{'page':32} {'p50 ms':>8} {'p99 ms':>8}")
            for name, path in pages.items():
                p50, p99 = await timed(client, path, runs)
                print(f"{name:32} {p50:8.1f} {p99:8.1f}")
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.holds, args.runs))
