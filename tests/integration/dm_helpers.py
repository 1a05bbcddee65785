"""Shared helpers for the DM end-to-end tests: send X DMs through dmgate."""

from __future__ import annotations

from typing import Any

import httpx

SENDER = "100"
SENDER_TOKEN = "user-token-of-100"
PITCH = (
    "Hey {name}, thanks for the follow! I built Rocketly for founders like you. "
    "Join 5,000 others here: https://rocketly.example/{n}"
)

TEMPLATE_ONLY = """
mode: enforce
policies:
  template_reuse:
    action: hold
    min_recipients: 3
    window: 24h
"""


def bearer(token: str = SENDER_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_dm(
    client: httpx.Client,
    recipient: str,
    text: str,
    headers: dict[str, str] | None = None,
    route: str = "x",
) -> httpx.Response:
    return client.post(
        f"/{route}/2/dm_conversations/with/{recipient}/messages",
        json={"text": text},
        headers={**bearer(), **(headers or {})},
    )


def pitch(i: int, name: str = "friend") -> str:
    return PITCH.format(name=name, n=i)


def learn_identity(client: httpx.Client, token: str = SENDER_TOKEN) -> Any:
    """Let dmgate see `GET /2/users/me` for the token, as tools do at start."""
    r = client.get("/x/2/users/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()
