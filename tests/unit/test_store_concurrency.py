"""Store operations stay correct when they run at the same instant, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from policies.template_reuse import fingerprint
from proxy.store import Store


def test_concurrent_copies_of_a_template_land_in_one_template(store_url: str) -> None:
    """Many copies judged at the same instant must count as one template: the N-th
    distinct recipient is caught however the operations interleave."""
    fp = fingerprint("Hey there, join my amazing program today at the link below", "x:1")
    assert fp is not None

    async def burst() -> list[int]:
        stores = [await Store.open(store_url) for _ in range(3)]  # like three replicas
        now = datetime.now(UTC)
        try:
            return await asyncio.gather(
                *(
                    stores[i % 3].signals.template_recipients(
                        "x", "1", fp, (str(i),), now, now, 0.5, 100
                    )
                    for i in range(40)
                )
            )
        finally:
            for store in stores:
                await store.close()

    assert sorted(asyncio.run(burst())) == list(range(1, 41))
