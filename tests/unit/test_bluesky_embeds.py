"""Bluesky chat: an embedded record (`app.bsky.embed.record`) is what the recipient sees as
a link to a post, so it is judged as that link (the post's own text is not in the request);
an edit that drops the link drops the embed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.platforms.base import BadDMRequest
from proxy.platforms.bluesky import BlueskyPlatform
from tests.unit.test_bluesky_platform import send

B = BlueskyPlatform()
POST = "at://did:plc:abc123/app.bsky.feed.post/3kxyz"
LINK = "https://bsky.app/profile/did:plc:abc123/post/3kxyz"


def body(text: str, embed: Any = None) -> bytes:
    message: dict[str, Any] = {"text": text}
    if embed is not None:
        message["embed"] = embed
    return json.dumps({"convoId": "c1", "message": message}).encode()


def record(uri: str = POST) -> dict[str, Any]:
    return {"$type": "app.bsky.embed.record", "record": {"uri": uri, "cid": "bafy"}}


def test_an_embedded_post_is_judged_as_its_link() -> None:
    assert B.parse_dm(B.classify(send()), body("Have a look", record())).text == (
        f"Have a look\n{LINK}"
    )
    assert B.parse_dm(B.classify(send()), body("", record())).text == LINK
    lst = "at://did:plc:abc123/app.bsky.graph.list/3kl"
    assert B.parse_dm(B.classify(send()), body("x", record(lst))).text.endswith(
        "/profile/did:plc:abc123/lists/3kl"
    )


@pytest.mark.parametrize(
    "embed",
    [
        {"$type": "app.bsky.embed.external", "external": {"uri": "https://x"}},
        {"$type": "app.bsky.embed.record", "record": {"uri": "https://bsky.app/x"}},
        {"$type": "app.bsky.embed.record"},
        "at://did:plc:abc/app.bsky.feed.post/1",
    ],
)
def test_embeds_dmgate_cannot_read_are_refused(embed: Any) -> None:
    with pytest.raises(BadDMRequest, match="embed") as exc:
        B.parse_dm(B.classify(send()), body("hi", embed))
    assert exc.value.status == 400


def test_an_edit_keeps_the_embed_only_with_its_link() -> None:
    call = B.classify(send())
    kept = json.loads(B.replace_text(call, body("Buy now", record()), f"Hello\n{LINK}"))
    assert kept["message"] == {"text": "Hello", "embed": record()}
    dropped = json.loads(B.replace_text(call, body("Buy now", record()), "Hello"))
    assert dropped["message"] == {"text": "Hello"}
