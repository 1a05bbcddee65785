"""SQLite's WAL is copied back into the database file by `Database.checkpoint_loop`, in
the background and often while DMs are written: otherwise the commit that crosses
`wal_autocheckpoint` copies it, on the event loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policies.template_reuse import fingerprint
from proxy.store import Store, database


def test_the_wal_is_copied_back_while_dms_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idle pause made endless: only the pause while the WAL grows can copy it back.
    monkeypatch.setattr(database, "CHECKPOINT_INTERVAL", 3600.0)
    db_file = tmp_path / "dmgate.db"

    def stamp() -> tuple[int, int]:
        st = db_file.stat()
        return st.st_size, st.st_mtime_ns

    async def run() -> None:
        store = await Store.open(f"sqlite:///{db_file}")
        checkpoints = asyncio.create_task(store.db.checkpoint_loop())
        try:
            now = datetime.now(UTC)
            seen, copies, i = stamp(), 0, 0
            # Three checkpoints, each seen as the file changing, within 150 DMs: ~500 WAL
            # pages, far too few for SQLite's own checkpoint (at 10,000).
            while copies < 3:
                assert i < 150, f"{copies} checkpoint(s) in {i} DMs"
                i += 1
                words = " ".join(f"w{i * 7 + k}" for k in range(12))  # a new text each
                fp = fingerprint(f"note {i}: {words}", "x:1")
                assert fp is not None
                await store.signals.template_recipients("x", "1", fp, (str(i),), now, now, 0.5, 9)
                await asyncio.sleep(0.01)  # a stream of DMs, not a tight loop
                if stamp() != seen:
                    seen, copies = stamp(), copies + 1
        finally:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)
            await store.close()

    asyncio.run(run())
