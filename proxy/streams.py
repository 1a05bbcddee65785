"""Reading bodies dmgate must hold in memory, never more than it is willing to."""

from __future__ import annotations

from aiohttp import StreamReader


async def read_capped(stream: StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` (what was read is lost, so
    only use this where the caller then refuses the request or has kept a copy)."""
    body = bytearray()
    async for chunk in stream.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
