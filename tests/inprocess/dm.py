"""Sending X DMs through an in-process dmgate (the async twins of
tests/integration/dm_helpers.py, whose constants they share)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.dm_helpers import SENDER_TOKEN, bearer


async def send_dm(
    client: httpx.AsyncClient,
    recipient: str,
    text: str,
    headers: dict[str, str] | None = None,
    route: str = "x",
) -> httpx.Response:
    return await client.post(
        f"/{route}/2/dm_conversations/with/{recipient}/messages",
        json={"text": text},
        headers={**bearer(), **(headers or {})},
    )


async def learn_identity(client: httpx.AsyncClient, token: str = SENDER_TOKEN) -> Any:
    """Let dmgate see `GET /2/users/me` for the token, as tools do at start."""
    r = await client.get("/x/2/users/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()
