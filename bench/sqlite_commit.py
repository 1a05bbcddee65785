"""What one index key costs SQLite: a DM's decision writes its new band keys (random
hashes) into `lsh_bands`, and each lands on a page of its own, which the commit then writes
to the WAL. This measures that floor without dmgate: k random keys inserted into a table of
--rows keys (WAL, synchronous=NORMAL, as the store runs), then the commit, for k = 5, 20 and
69 (a kept copy indexes 37 keys, 69 with a link).

    python bench/sqlite_commit.py                 # 2M rows (~ the index at 50k DMs)
    python bench/sqlite_commit.py --rows 200000 --dir /dev/shm

Prints the insert and commit time per transaction and per key. The commit's share grows with
the keys (each dirty page is a WAL frame written and checksummed), so a decision's SQLite
cost is bounded by its new keys, not by the index's size — and PostgreSQL, which writes the
index without waiting for the WAL flush, is the store for the heaviest senders.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--transactions", type=int, default=300)
    ap.add_argument("--dir", default=None, help="where the database file goes (default: /tmp)")
    args = ap.parse_args()
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        con = sqlite3.connect(Path(tmp) / "keys.db", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE lsh_bands (key INTEGER PRIMARY KEY, template_id INTEGER)")
        con.execute("BEGIN")
        con.executemany(
            "INSERT OR IGNORE INTO lsh_bands VALUES (?, ?)",
            ((rnd.getrandbits(62), i) for i in range(args.rows)),
        )
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"python bench/sqlite_commit.py --rows {args.rows} (SQLite {sqlite3.sqlite_version})")
        print("keys/tx   insert µs   commit µs   total per key µs")
        for keys in (5, 20, 69):
            sql = "INSERT OR IGNORE INTO lsh_bands VALUES " + ", ".join(["(?, ?)"] * keys)
            insert = commit = 0.0
            for n in range(args.transactions):
                params = [v for _ in range(keys) for v in (rnd.getrandbits(62), n)]
                t0 = time.perf_counter()
                con.execute("BEGIN IMMEDIATE")
                con.execute(sql, params)
                t1 = time.perf_counter()
                con.execute("COMMIT")
                commit += time.perf_counter() - t1
                insert += t1 - t0
                if n % 100 == 99:  # as the store's checkpoint loop does, off the DM's path
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            tx = args.transactions
            per_key = (insert + commit) / tx / keys * 1e6
            print(
                f"{keys:7d}   {insert / tx * 1e6:9.0f}   {commit / tx * 1e6:9.0f}   {per_key:16.1f}"
            )
        con.close()


if __name__ == "__main__":
    main()
