"""Meaning (embedding) band keys become account prefix + band + value: re-key the stored ones.

A meaning key was a hash of the account, the band and the band's value, so one account's
keys were spread over the whole of `lsh_bands` and a DM's 32 lookups and claims touched 32
random pages. Now (policies/meaning.py) the account's hash is the key's high bits and the
band and value its low 11, so an account's at most 2,048 keys sit side by side.

Every key an account can have is known without reading a copy (32 bands x 64 values), so
each is moved in place, old key to new, keeping the template it names: nothing is
recomputed and no count is lost. Costs 2,048 index lookups per sending account (~1.4 s
per 100 accounts on SQLite, measured on a 1M-message database). The two formulas are
written out here, frozen, rather than imported: the migration must keep meaning what it
meant when it was written.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Iterator, Sequence

import sqlalchemy as sa
import xxhash
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS, BAND_BITS = 32, 6
ACCOUNTS_PER_STATEMENT = 50


def _hashed(scope: str, band: int, value: int) -> int:
    # Up to 0010: one hash of the (length-prefixed) scope, band and value.
    data = b"e" + len(scope).to_bytes(4, "little") + scope.encode() + bytes((band, value))
    return xxhash.xxh64_intdigest(data) & ((1 << 63) - 1)


def _prefixed(scope: str, band: int, value: int) -> int:
    # From 0011: the scope's hash in the high 52 bits, then 5 bits of band, 6 of value.
    prefix = xxhash.xxh64_intdigest(b"e" + scope.encode()) >> 12 << 11
    return prefix | band << BAND_BITS | value


def _moves(scopes: Sequence[str], forward: bool) -> Iterator[tuple[int, int]]:
    for scope in scopes:
        for band in range(BANDS):
            for value in range(1 << BAND_BITS):
                old, new = _hashed(scope, band, value), _prefixed(scope, band, value)
                yield (old, new) if forward else (new, old)


def _rekey(forward: bool) -> None:
    conn = op.get_bind()
    scopes = [
        f"{platform}:{account}"
        for platform, account in conn.execute(
            sa.text("SELECT DISTINCT platform, account FROM templates")
        )
    ]
    for i in range(0, len(scopes), ACCOUNTS_PER_STATEMENT):
        moves = list(_moves(scopes[i : i + ACCOUNTS_PER_STATEMENT], forward))
        if conn.dialect.name == "postgresql":
            # One statement per batch: ~100k single-row updates would be as many round trips.
            conn.execute(
                sa.text(
                    "UPDATE lsh_bands AS b SET key = m.new"
                    " FROM unnest(CAST(:old AS bigint[]), CAST(:new AS bigint[])) AS m(old, new)"
                    " WHERE b.key = m.old"
                ),
                {"old": [o for o, _ in moves], "new": [n for _, n in moves]},
            )
        else:
            conn.execute(
                sa.text("UPDATE lsh_bands SET key = :new WHERE key = :old"),
                [{"old": o, "new": n} for o, n in moves],
            )


def upgrade() -> None:
    _rekey(forward=True)


def downgrade() -> None:
    _rekey(forward=False)
