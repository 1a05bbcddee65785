"""The Meta adapter (Messenger and Instagram through the Graph API): classification, every
request form (JSON, form, query, multipart), edits, learning and answers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import Identity, InboundMessage, Profile
from proxy.platforms import PLATFORMS
from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RequestView
from proxy.platforms.meta import MetaPlatform, NotADirectMessage

META = MetaPlatform()
PAGE = "1122334455"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SEND = {
    "recipient": {"id": "9001"},
    "messaging_type": "RESPONSE",
    "message": {"text": "Hi Anna, thanks for reaching out"},
}


def view(
    method: str,
    path: str,
    query: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> RequestView:
    return RequestView(
        method,
        path,
        MultiDictProxy(MultiDict(query or [])),
        CIMultiDictProxy(CIMultiDict(headers or {})),
    )


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def as_strings(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Graph's form/query convention: object fields as JSON strings."""
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()]


def send_view(
    query: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    path: str = f"/v21.0/{PAGE}/messages",
) -> RequestView:
    return view("POST", path, query, headers)


def multipart(fields: list[tuple[str, str]], boundary: str = "XyZ") -> tuple[bytes, str]:
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n\x89PNG\r\n"
    )
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"


def test_registered_under_its_name() -> None:
    assert PLATFORMS["meta"] is MetaPlatform
    assert isinstance(PLATFORMS["meta"](), MetaPlatform)


# --- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/v21.0/{PAGE}/messages",
        f"/{PAGE}/messages",
        "/me/messages",
        "/v21.0/me/messages",
        "/v3/me/messages",
        f"/v21.0/{PAGE}/messages/",
        f"//v21.0//{PAGE}/messages",
        "/",  # a batch request may carry sends
        "/v21.0",
    ],
)
def test_sends_are_dms(path: str) -> None:
    assert META.classify(view("POST", path)).kind is Kind.DM


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", f"/v21.0/{PAGE}/messages", []),
        ("POST", f"/v21.0/{PAGE}/message", []),
        ("POST", f"/v21.0/{PAGE}/messages/extra", []),
        ("POST", f"/v21.0/{PAGE}/feed", []),
        ("POST", "/me/message_attachments", []),
        ("POST", "/me/messenger_profile", []),
        # DELETE on a send path is refused now (test_platform_meta_hardening.py).
        ("GET", f"/v21.0/{PAGE}", [("fields", "about,likes")]),
        ("GET", "/v21.0/me/accounts", []),
    ],
)
def test_near_misses_pass_through(method: str, path: str, query: list[tuple[str, str]]) -> None:
    assert META.classify(view(method, path, query)).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/me", []),
        ("/v21.0/me", []),
        (f"/v21.0/{PAGE}/conversations", [("fields", "participants,messages{from}")]),
        ("/v21.0/9001", [("fields", "first_name,last_name")]),
    ],
)
def test_identity_conversation_and_profile_reads_are_signals(
    path: str, query: list[tuple[str, str]]
) -> None:
    assert META.classify(view("GET", path, query)).kind is Kind.SIGNAL


def test_credential_from_query_or_authorization_header() -> None:
    assert META.credential(view("GET", "/me", [("access_token", "EAAB")])) == "EAAB"
    assert META.credential(view("GET", "/me", headers={"Authorization": "Bearer EAAC"})) == "EAAC"
    assert META.credential(view("GET", "/me", headers={"Authorization": "OAuth EAAD"})) == "EAAD"
    assert META.credential(view("GET", "/me")) is None


def test_sender_is_the_page_in_the_path_or_unknown_for_me() -> None:
    assert META.account_from_request(META.classify(send_view())) == PAGE
    assert META.account_from_request(META.classify(send_view(path="/me/messages"))) is None


# --- the request forms ------------------------------------------------------------------


EXPECTED = ParsedDM(("9001",), "Hi Anna, thanks for reaching out", account_hint=PAGE)


def test_json_body() -> None:
    assert META.parse_dm(META.classify(send_view(headers=JSON)), dumps(SEND)) == EXPECTED


def test_json_body_without_content_type() -> None:
    assert META.parse_dm(META.classify(send_view()), dumps(SEND)) == EXPECTED


def test_form_body_with_json_strings() -> None:
    body = urlencode([*as_strings(SEND), ("access_token", "EAAB")]).encode()
    assert META.parse_dm(META.classify(send_view(headers=FORM)), body) == EXPECTED


def test_query_parameters_with_json_strings() -> None:
    assert META.parse_dm(META.classify(send_view(as_strings(SEND))), b"") == EXPECTED


def test_fields_split_between_query_and_body() -> None:
    body = urlencode(as_strings({"message": SEND["message"]})).encode()
    query = as_strings({"recipient": SEND["recipient"], "messaging_type": "RESPONSE"})
    assert META.parse_dm(META.classify(send_view(query, FORM)), body) == EXPECTED


def test_multipart_body() -> None:
    body, content_type = multipart(as_strings(SEND))
    assert (
        META.parse_dm(META.classify(send_view(headers={"Content-Type": content_type})), body)
        == EXPECTED
    )


def test_attachment_upload_without_text() -> None:
    doc = {**SEND, "message": {"attachment": {"type": "image", "payload": {"is_reusable": True}}}}
    body, content_type = multipart(as_strings(doc))
    assert (
        META.parse_dm(META.classify(send_view(headers={"Content-Type": content_type})), body).text
        == ""
    )


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ({"id": "9001"}, "9001"),
        ({"id": 9001}, "9001"),
        ({"user_ref": "UREF"}, "user_ref:UREF"),
        ({"comment_id": "123_456"}, "comment:123_456"),
        ({"post_id": "123_789"}, "post:123_789"),
        ({"notification_messages_token": "T"}, "notification_token:T"),
    ],
)
def test_recipient_kinds(recipient: dict[str, Any], expected: str) -> None:
    dm = META.parse_dm(
        META.classify(send_view(headers=JSON)), dumps({**SEND, "recipient": recipient})
    )
    assert dm.recipients == (expected,)


def assert_not_a_dm(req: RequestView, body: bytes) -> None:
    """Passed through unjudged: the gateway forwards what `parse_dm` says is no DM."""
    with pytest.raises(NotADirectMessage):
        META.parse_dm(META.classify(req), body)


def test_sender_action_is_not_a_message() -> None:
    doc = {"recipient": {"id": "9001"}, "sender_action": "typing_on"}
    assert_not_a_dm(send_view(headers=JSON), dumps(doc))
    assert_not_a_dm(send_view(as_strings(doc)), b"")


@pytest.mark.parametrize(
    ("query", "headers", "body", "fragment"),
    [
        ([], JSON, b"{nope", "not valid JSON"),
        ([], JSON, b"[]", "must be a JSON object"),
        ([], JSON, b'{"message": {"text": "a"}, "message": {"text": "b"}}', "twice"),
        ([], JSON, dumps({"recipient": {"id": "1"}}), "message is required"),
        ([], JSON, dumps({"message": {"text": "hi"}}), "recipient is required"),
        ([], JSON, dumps({**SEND, "recipient": {}}), "exactly one of"),
        ([], JSON, dumps({**SEND, "recipient": {"id": "1", "user_ref": "u"}}), "exactly one"),
        ([], JSON, dumps({**SEND, "recipient": {"id": ""}}), "non-empty"),
        ([], JSON, dumps({**SEND, "message": {}}), "message.text or"),
        ([], JSON, dumps({**SEND, "message": {"text": 5}}), "must be a string"),
        ([], JSON, dumps({**SEND, "message": "not json"}), "message must be a JSON object"),
        ([], FORM, b"recipient=%7B&message=x", "recipient must be a JSON object"),
        ([], FORM, b"message=a&message=b&recipient=%7B%7D", "twice in the form body"),
        ([("message", '{"text":"q"}')], JSON, dumps(SEND), "both in the query string and"),
        ([("message", "a"), ("message", "b")], {}, b"", "twice in the query string"),
    ],
)
def test_malformed_sends_are_refused(
    query: list[tuple[str, str]], headers: dict[str, str], body: bytes, fragment: str
) -> None:
    with pytest.raises(BadDMRequest, match=fragment) as info:
        META.parse_dm(META.classify(send_view(query, headers)), body)
    assert info.value.status == 400


def test_unsupported_content_type() -> None:
    with pytest.raises(BadDMRequest) as info:
        META.parse_dm(
            META.classify(send_view(headers={"Content-Type": "application/xml"})), b"<x/>"
        )
    assert info.value.status == 415


def test_batch_sends_it_cannot_read_are_refused_and_other_batches_pass() -> None:
    send = [{"method": "POST", "relative_url": "v21.0/me/messages", "body": "recipient=..."}]
    reads = [{"method": "GET", "relative_url": "me/feed"}]
    with pytest.raises(BadDMRequest, match="batch"):
        META.parse_dm(
            META.classify(view("POST", "/", headers=FORM)),
            urlencode({"batch": json.dumps(send)}).encode(),
        )
    with pytest.raises(BadDMRequest, match="batch"):
        META.parse_dm(META.classify(view("POST", "/v21.0", headers=JSON)), dumps({"batch": send}))
    assert_not_a_dm(
        view("POST", "/", headers=FORM), urlencode({"batch": json.dumps(reads)}).encode()
    )


# --- edits keep the form ----------------------------------------------------------------


def test_replace_text_json() -> None:
    edited = META.replace_text(META.classify(send_view(headers=JSON)), dumps(SEND), "Edited ✓")
    assert json.loads(edited) == {**SEND, "message": {"text": "Edited ✓"}}


def test_replace_text_json_with_message_as_string_stays_a_string() -> None:
    doc = {**SEND, "message": json.dumps(SEND["message"])}
    edited = json.loads(
        META.replace_text(META.classify(send_view(headers=JSON)), dumps(doc), "New")
    )
    assert isinstance(edited["message"], str)
    assert json.loads(edited["message"]) == {"text": "New"}


def test_replace_text_form_keeps_every_other_field_in_order() -> None:
    pairs = [*as_strings(SEND), ("access_token", "EAAB")]
    edited = META.replace_text(
        META.classify(send_view(headers=FORM)), urlencode(pairs).encode(), "New words"
    )
    out = parse_qsl(edited.decode())
    assert [k for k, _ in out] == [k for k, _ in pairs]
    assert json.loads(dict(out)["message"]) == {"text": "New words"}
    assert dict(out)["access_token"] == "EAAB"
    assert META.parse_dm(META.classify(send_view(headers=FORM)), edited).text == "New words"


@pytest.mark.parametrize("where", ["query", "multipart"])
def test_replace_text_refuses_forms_it_cannot_rewrite(where: str) -> None:
    if where == "query":
        req, body = send_view(as_strings(SEND)), b""
    else:
        body, content_type = multipart(as_strings(SEND))
        req = send_view(headers={"Content-Type": content_type})
    with pytest.raises(BadDMRequest) as info:
        META.replace_text(META.classify(req), body, "edit")
    assert info.value.status == 422


def test_replace_text_refuses_an_empty_edit_without_attachment() -> None:
    with pytest.raises(BadDMRequest) as info:
        META.replace_text(META.classify(send_view(headers=JSON)), dumps(SEND), "")
    assert info.value.status == 422


# --- answers ----------------------------------------------------------------------------


def test_hold_answer_is_the_send_api_success() -> None:
    answer = META.hold_response(META.classify(send_view()), EXPECTED, PAGE, "H1")
    assert answer.status == 200
    assert isinstance(answer.body, dict)
    assert answer.body["recipient_id"] == "9001"
    assert answer.body["message_id"].startswith("m_")
    assert answer.body["dmgate"] == {"hold_id": "H1", "status": "pending"}
    assert META.hold_response(META.classify(send_view()), EXPECTED, PAGE, "H1").body == answer.body


def test_hold_answer_leaves_out_recipient_id_it_cannot_know() -> None:
    answer = META.hold_response(
        META.classify(send_view()), ParsedDM(("comment:1_2",), "hi"), PAGE, "H1"
    )
    assert isinstance(answer.body, dict)
    assert "recipient_id" not in answer.body


def test_block_answer_is_a_graph_permission_error() -> None:
    answer = META.block_response(
        META.classify(send_view()), "follow_timing: recipient 9001 followed 2m ago"
    )
    assert answer.status == 403
    assert isinstance(answer.body, dict)
    error = answer.body["error"]
    assert error["type"] == "OAuthException"
    assert error["code"] == 10
    assert error["message"] == "(#10) follow_timing: recipient 9001 followed 2m ago"
    assert error["fbtrace_id"]
    assert answer.body["dmgate"]["decision"] == "block"


# --- learning ---------------------------------------------------------------------------


def test_learns_identity_from_me() -> None:
    facts = META.learn(
        META.classify(view("GET", "/v21.0/me")), None, 200, dumps({"name": "Rocketly", "id": PAGE})
    )
    assert facts == [Identity(PAGE), Profile(PAGE, ("Rocketly",))]


def test_learns_the_instagram_professional_account_id_when_answered() -> None:
    doc = {"id": "777", "user_id": "17841400000000000", "username": "rocketly"}
    facts = META.learn(
        META.classify(view("GET", "/me", [("fields", "user_id,username")])), None, 200, dumps(doc)
    )
    assert facts[0] == Identity("17841400000000000")


def test_learns_profiles_from_user_profile_reads() -> None:
    req = view("GET", "/v21.0/9001", [("fields", "first_name,last_name")])
    doc = {"first_name": "Anna", "last_name": "Lee", "id": "9001"}
    assert META.learn(META.classify(req), PAGE, 200, dumps(doc)) == [
        Profile("9001", ("Anna Lee", "Anna"))
    ]


def test_learns_inbound_messages_from_conversations() -> None:
    doc = {
        "data": [
            {
                "id": "t_1",
                "participants": {"data": [{"name": "Anna Lee", "id": "9001"}, {"id": PAGE}]},
                "messages": {
                    "data": [
                        {
                            "id": "m_2",
                            "created_time": "2024-05-01T10:05:00+0000",
                            "from": {"id": PAGE},
                        },
                        {
                            "id": "m_1",
                            "created_time": "2024-05-01T10:00:00+0000",
                            "from": {"id": "9001", "name": "Anna Lee"},
                        },
                    ]
                },
            }
        ]
    }
    facts = META.learn(
        META.classify(view("GET", f"/v21.0/{PAGE}/conversations")), None, 200, dumps(doc)
    )
    assert Profile("9001", ("Anna Lee",)) in facts
    inbound = [f for f in facts if isinstance(f, InboundMessage)]
    assert len(inbound) == 1
    assert (inbound[0].account, inbound[0].sender) == (PAGE, "9001")
    assert inbound[0].at is not None and inbound[0].at.minute == 0


def test_me_conversations_use_the_known_account() -> None:
    doc = {"data": [{"messages": {"data": [{"from": {"id": "9001"}}]}}]}
    facts = META.learn(META.classify(view("GET", "/me/conversations")), PAGE, 200, dumps(doc))
    assert facts == [InboundMessage(PAGE, "9001", None)]
    assert META.learn(META.classify(view("GET", "/me/conversations")), None, 200, dumps(doc)) == []


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"data": 5}', b'{"id": {"x": 1}}'])
def test_weird_answers_teach_nothing(body: bytes) -> None:
    for path in ("/me", f"/{PAGE}/conversations"):
        assert META.learn(META.classify(view("GET", path)), PAGE, 200, body) == []
    assert META.learn(META.classify(view("GET", "/me")), None, 400, dumps({"id": PAGE})) == []


# --- webhooks ---------------------------------------------------------------------------


def test_webhook_challenge_echoes_the_challenge_for_the_right_token() -> None:
    query = [("hub.mode", "subscribe"), ("hub.challenge", "1158201444"), ("hub.verify_token", "s3")]
    answer = META.webhook_challenge(MultiDictProxy(MultiDict(query)), "s3")
    assert answer is not None
    assert (answer.status, answer.body, answer.content_type) == (200, b"1158201444", "text/plain")
    wrong = META.webhook_challenge(MultiDictProxy(MultiDict(query)), "other")
    assert wrong is not None and wrong.status == 403
    unset = META.webhook_challenge(MultiDictProxy(MultiDict(query)), None)
    assert unset is not None and unset.status == 503
    assert META.webhook_challenge(MultiDictProxy(MultiDict([("x", "1")])), "s3") is None


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac

    body = b'{"object":"page"}'
    good = "sha256=" + hmac.new(b"appsecret", body, hashlib.sha256).hexdigest()
    headers = CIMultiDictProxy(CIMultiDict({"X-Hub-Signature-256": good}))
    assert META.webhook_signature_valid(headers, body, "appsecret")
    assert not META.webhook_signature_valid(headers, body + b" ", "appsecret")
    assert not META.webhook_signature_valid(headers, body, None)
    assert not META.webhook_signature_valid(CIMultiDictProxy(CIMultiDict()), body, "appsecret")


def test_webhook_messages_and_postbacks_are_inbound_echoes_are_not() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, tzinfo=UTC)
    doc = {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": 1458692752478,
                "messaging": [
                    {
                        "sender": {"id": "9001"},
                        "recipient": {"id": PAGE},
                        "timestamp": 1458692752478,
                        "message": {"mid": "m_1", "text": "hi"},
                    },
                    {
                        "sender": {"id": "9002"},
                        "recipient": {"id": PAGE},
                        "postback": {"payload": "GET_STARTED"},
                    },
                    {
                        "sender": {"id": PAGE},
                        "recipient": {"id": "9003"},
                        "message": {"mid": "m_2", "text": "echo", "is_echo": True},
                    },
                    {"sender": {"id": "9004"}, "recipient": {"id": PAGE}, "read": {"watermark": 1}},
                ],
            }
        ],
    }
    facts = META.webhook_facts(dumps(doc), now)
    assert facts == [
        InboundMessage(PAGE, "9001", datetime.fromtimestamp(1458692752.478, tz=UTC)),
        InboundMessage(PAGE, "9002", now),
    ]
    assert META.webhook_facts(b"nope", now) == []
