"""Reading bodies dmgate must hold in memory, never more than it is willing to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class _Chunks(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


async def read_capped(stream: _Chunks, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` (what was read is lost, so
    only use this where the caller then refuses the request or has kept a copy)."""
    body = bytearray()
    async for chunk in stream.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
