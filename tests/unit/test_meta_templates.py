"""Messenger/Instagram: the judged text is what the recipient reads — button and generic
templates, quick replies and captions, shaped as the Send API reference's examples
(developers.facebook.com/docs/messenger-platform/send-messages/templates) — and a Graph
body or query naming a key twice is refused."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from proxy.platforms.base import BadDMRequest, ParsedDM
from proxy.platforms.meta import MetaPlatform
from tests.unit.test_meta_platform import FORM, JSON, view

META = MetaPlatform()
PATH = "/v21.0/123/messages"
PITCH = "Thanks for the follow! Claim 50% off Rocketly today"


def button_template(text: str = PITCH) -> dict[str, Any]:
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": text,
                "buttons": [
                    {"type": "web_url", "url": "https://rocketly.example", "title": "Buy now"},
                    {"type": "postback", "title": "Tell me more", "payload": "MORE"},
                ],
            },
        }
    }


def generic_template() -> dict[str, Any]:
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "generic",
                "elements": [
                    {
                        "title": "Rocketly Pro",
                        "subtitle": PITCH,
                        "image_url": "https://rocketly.example/a.png",
                        "buttons": [
                            {"type": "web_url", "url": "https://r.example", "title": "Shop"}
                        ],
                    },
                    {"title": "Rocketly Team", "subtitle": "For teams"},
                ],
            },
        }
    }


def parse(message: dict[str, Any], headers: dict[str, str] = JSON) -> ParsedDM:
    doc = {"recipient": {"id": "42"}, "messaging_type": "RESPONSE", "message": message}
    return META.parse_dm(
        META.classify(view("POST", PATH, headers=headers)), json.dumps(doc).encode()
    )


def test_a_button_template_is_judged_on_its_text_and_buttons() -> None:
    assert parse(button_template()).text == f"{PITCH}\nBuy now\nTell me more"


def test_a_generic_template_is_judged_on_titles_subtitles_and_buttons() -> None:
    assert parse(generic_template()).text == (
        f"Rocketly Pro\n{PITCH}\nShop\nRocketly Team\nFor teams"
    )


def test_quick_replies_and_captions_are_part_of_the_text() -> None:
    message = {
        "text": "Hi Anna!",
        "quick_replies": [
            {"content_type": "text", "title": "Claim 50% off", "payload": "A"},
            {"content_type": "user_email"},
        ],
    }
    assert parse(message).text == "Hi Anna!\nClaim 50% off"
    media = {"attachment": {"type": "image", "payload": {"url": "https://x", "caption": PITCH}}}
    assert parse(media).text == PITCH
    # A plain media attachment still has no text.
    assert parse({"attachment": {"type": "image", "payload": {"url": "https://x"}}}).text == ""


def test_template_text_in_a_form_body_is_read_too() -> None:
    body = urlencode(
        {"recipient": json.dumps({"id": "42"}), "message": json.dumps(button_template())}
    ).encode()
    dm = META.parse_dm(META.classify(view("POST", PATH, headers=FORM)), body)
    assert dm.text.startswith(PITCH)


@pytest.mark.parametrize(
    "message",
    [
        {"attachment": {"type": "template", "payload": {"text": 5, "buttons": []}}},
        {"attachment": {"type": "template", "payload": {"text": "a", "buttons": [{"title": 1}]}}},
        {"attachment": {"type": "template", "payload": {"elements": "x"}}},
        {"text": "hi", "quick_replies": {"title": "x"}},
    ],
)
def test_unreadable_template_text_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(BadDMRequest) as exc:
        parse(message)
    assert exc.value.status == 400


def test_a_template_cannot_be_edited_in_place() -> None:
    call = META.classify(view("POST", PATH, headers=JSON))
    doc = {"recipient": {"id": "42"}, "message": button_template()}
    with pytest.raises(BadDMRequest, match="template") as exc:
        META.replace_text(call, json.dumps(doc).encode(), "something else")
    assert exc.value.status == 422


SEND = json.dumps([{"method": "POST", "relative_url": "me/messages", "body": "x=1"}])
HARMLESS = json.dumps([{"method": "GET", "relative_url": "me"}])


@pytest.mark.parametrize(
    ("query", "headers", "body"),
    [
        ([], FORM, urlencode([("batch", HARMLESS), ("batch", SEND)]).encode()),
        ([("batch", HARMLESS), ("batch", SEND)], {}, b""),
        ([("batch", SEND)], FORM, urlencode([("batch", HARMLESS)]).encode()),
        ([], JSON, b'{"batch": ' + json.dumps(HARMLESS).encode() + b', "batch": []}'),
        (
            [],
            FORM,
            urlencode(
                {
                    "batch": '[{"method": "GET", "relative_url": "me", "relative_url": "me/'
                    + 'messages"}]'
                }
            ).encode(),
        ),
    ],
)
def test_a_batch_named_twice_is_refused(query: Any, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(BadDMRequest, match=r"twice|both") as exc:
        META.parse_dm(META.classify(view("POST", "/", query, headers)), body)
    assert exc.value.status == 400


def test_any_key_twice_in_a_send_form_is_refused() -> None:
    body = urlencode(
        [
            ("recipient", json.dumps({"id": "42"})),
            ("message", json.dumps({"text": "hi"})),
            ("access_token", "a"),
            ("access_token", "b"),
        ]
    ).encode()
    with pytest.raises(BadDMRequest, match="access_token is given twice"):
        META.parse_dm(META.classify(view("POST", PATH, headers=FORM)), body)
