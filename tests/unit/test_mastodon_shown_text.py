"""Mastodon: a direct status is judged on all the recipient reads — the content warning
(`spoiler_text`), the status and a poll's options — while its recipients stay the status's
own mentions; an edit on approval changes only the status."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from proxy.platforms.base import BadDMRequest
from proxy.platforms.mastodon import MastodonPlatform
from tests.unit.test_mastodon_platform import FORM, JSON, MULTIPART, multipart, post

M = MastodonPlatform()
CW = "Limited offer: 50% off Rocketly for new followers"


def test_the_content_warning_is_read_before_the_status() -> None:
    body = urlencode({"status": "@bob hi", "visibility": "direct", "spoiler_text": CW}).encode()
    dm = M.parse_dm(M.classify(post(FORM)), body)
    assert dm.recipients == ("bob",)
    assert dm.text == f"{CW}\n\n@bob hi"


def test_poll_options_are_read_after_the_status() -> None:
    doc = {
        "status": "@bob which plan?",
        "visibility": "direct",
        "poll": {"options": ["Buy Rocketly Pro", "Buy Rocketly Team"], "expires_in": 3600},
    }
    dm = M.parse_dm(M.classify(post(JSON)), json.dumps(doc).encode())
    assert dm.text == "@bob which plan?\n\nBuy Rocketly Pro\nBuy Rocketly Team"
    pairs = [
        ("status", "@bob which plan?"),
        ("visibility", "direct"),
        ("poll[options][]", "Buy Rocketly Pro"),
        ("poll[options][]", "Buy Rocketly Team"),
        ("poll[expires_in]", "3600"),
    ]
    assert M.parse_dm(M.classify(post(FORM)), urlencode(pairs).encode()).text == dm.text
    parts = multipart(pairs)
    assert M.parse_dm(M.classify(post(MULTIPART)), parts).text == dm.text


def test_poll_options_that_are_not_strings_are_refused() -> None:
    doc = {"status": "@bob hi", "visibility": "direct", "poll": {"options": [1, 2]}}
    with pytest.raises(BadDMRequest, match=r"poll\.options") as exc:
        M.parse_dm(M.classify(post(JSON)), json.dumps(doc).encode())
    assert exc.value.status == 400


def test_an_edit_keeps_the_warning_and_the_poll_and_changes_the_status() -> None:
    doc = {"status": "@bob hi", "visibility": "direct", "spoiler_text": CW}
    doc["poll"] = {"options": ["Yes", "No"], "expires_in": 60}
    call, body = M.classify(post(JSON)), json.dumps(doc).encode()
    out = json.loads(M.replace_text(call, body, f"{CW}\n\n@bob hello there\n\nYes\nNo"))
    assert out == {**doc, "status": "@bob hello there"}
    with pytest.raises(BadDMRequest, match="content warning") as exc:
        M.replace_text(call, body, "@bob hello there")
    assert exc.value.status == 422
