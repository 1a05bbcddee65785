"""X: every spelling of a DM send is judged or refused, recipients have one spelling,
XChat is judged as an opaque DM, and `whoami` names the sender."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import ConversationMembers, Identity
from proxy.platforms.base import BadDMRequest, Kind, RefusedRequest, RequestView
from proxy.platforms.x import XPlatform

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.server import ask  # noqa: E402
from tests.fakes.x_upstream import FakeX, schema_errors  # noqa: E402

# X's own OpenAPI document (info.version 2.167), copied into the repository from
# /work/shared/specs/ so that the conformance tests run on every clone and in CI.
SPEC_PATH = REPO_ROOT / "tests" / "fixtures" / "x-api-v2-openapi.json"
X = XPlatform()
JSON = {"Content-Type": "application/json"}
# Digits `int()` accepts and X does not (fullwidth, Arabic-Indic).
FULLWIDTH_42 = "\uff14\uff12"
ARABIC_42 = "\u0664\u0662"
CHAT_BODY = {"message_id": "m-1", "encoded_message_create_event": "AAEC"}


def view(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> RequestView:
    return RequestView(
        method,
        path,
        MultiDictProxy(MultiDict(query or [])),
        CIMultiDictProxy(CIMultiDict(headers or {})),
    )


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# --- path spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/2/DM_Conversations/with/0042/messages.json/",
        "/2/dm_conversations/WITH/42/Messages",
        "/2/dm_conversations/with/42/messages.xml",
        "/2/Dm_Conversations/7-42/MESSAGES",
        "/2/DM_CONVERSATIONS",
        "/2/dm_conversations.json",
        "/1.1/Direct_Messages/Events/New.JSON",
        "/1.1/direct_messages/events/new.xml",
        "/2/chat/conversations/42/messages",
        "/2/Chat/Conversations/g123/Messages.json/",
        "/2/x/../chat/conversations/42/messages;a=b",
    ],
)
def test_every_spelling_of_a_send_is_a_dm(path: str) -> None:
    assert X.classify(view("POST", path)).kind is Kind.DM


def test_a_tricky_spelling_is_judged_as_the_same_recipient() -> None:
    req = view("POST", "/2/DM_Conversations/with/0042/messages.json/", JSON)
    assert X.parse_dm(X.classify(req), b'{"text": "hi"}').recipients == ("42",)


def test_percent_encoded_letters_arrive_decoded_once() -> None:
    # The gateway hands adapters the path decoded once, as X's router reads it.
    path = unquote("/2/dm_conversations/with/%34%32/m%65ssages")
    assert X.classify(view("POST", path)).kind is Kind.DM
    assert X.parse_dm(X.classify(view("POST", path, JSON)), b'{"text": "hi"}').recipients == ("42",)
    # Encoded twice, X decodes once too and sees `m%65ssages`: no send, and no DM here.
    twice = unquote("/2/dm_conversations/with/42/m%2565ssages")
    assert X.classify(view("POST", twice)).kind is Kind.PASSTHROUGH


def test_signals_match_in_any_case_too() -> None:
    assert X.classify(view("GET", "/2/Users/ME")).kind is Kind.SIGNAL
    assert X.classify(view("GET", "/1.1/followers/ids.JSON")).kind is Kind.SIGNAL


# --- other methods ---------------------------------------------------------------------

SEND_PATHS = [
    "/2/dm_conversations/with/1/messages",
    "/2/DM_Conversations/with/0042/messages.json/",
    "/2/dm_conversations/1-2/messages",
    "/2/dm_conversations",
    "/1.1/direct_messages/events/new.json",
    "/2/chat/conversations/1/messages",
]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("path", SEND_PATHS)
def test_other_methods_on_send_paths_are_refused(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        X.classify(view(method, path))
    assert info.value.status == 405
    assert method in str(info.value) and "accept only POST" in str(info.value)


def test_a_cors_preflight_is_not_refused() -> None:
    req = view("OPTIONS", SEND_PATHS[0], {"Access-Control-Request-Method": "POST"})
    assert X.classify(req).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/2/dm_conversations/with/1/dm_events"),
        ("DELETE", "/2/dm_events/123"),
        ("GET", "/2/dm_conversations/media/1/2/3"),
        ("POST", "/2/chat/conversations/1/typing"),
        ("GET", "/2/chat/conversations/1/events"),
    ],
)
def test_neighbouring_paths_keep_their_methods(method: str, path: str) -> None:
    assert X.classify(view(method, path)).kind in (Kind.SIGNAL, Kind.PASSTHROUGH)


# --- recipient ids -----------------------------------------------------------------------


@pytest.mark.parametrize("participant", ["42", "0042", " 42", "000042"])
def test_participant_ids_have_one_spelling(participant: str) -> None:
    req = view("POST", f"/2/dm_conversations/with/{participant}/messages", JSON)
    assert X.parse_dm(X.classify(req), b'{"text": "hi"}').recipients == ("42",)


@pytest.mark.parametrize("participant", [FULLWIDTH_42, ARABIC_42, "4\uff12", "-42", "+42", "42.0"])
def test_participant_ids_in_other_digits_are_refused(participant: str) -> None:
    req = view("POST", f"/2/dm_conversations/with/{participant}/messages", JSON)
    with pytest.raises(BadDMRequest) as info:
        X.parse_dm(X.classify(req), b'{"text": "hi"}')
    assert info.value.status == 400


@pytest.mark.parametrize("recipient", [42, "42", "0042", " 42"])
def test_v1_recipient_as_number_or_string_is_one_person(recipient: Any) -> None:
    body = {
        "event": {
            "type": "message_create",
            "message_create": {
                "target": {"recipient_id": recipient},
                "message_data": {"text": "x"},
            },
        }
    }
    dm = X.parse_dm(X.classify(view("POST", "/1.1/direct_messages/events/new.json")), dumps(body))
    assert dm.recipients == ("42",)


@pytest.mark.parametrize("recipient", [42.0, True, -42, FULLWIDTH_42, None])
def test_v1_odd_recipients_are_refused(recipient: Any) -> None:
    body = {
        "event": {
            "type": "message_create",
            "message_create": {
                "target": {"recipient_id": recipient},
                "message_data": {"text": "x"},
            },
        }
    }
    with pytest.raises(BadDMRequest) as info:
        X.parse_dm(X.classify(view("POST", "/1.1/direct_messages/events/new.json")), dumps(body))
    assert info.value.status == 400


def test_group_create_participants_are_canonical_and_deduplicated() -> None:
    body = {
        "conversation_type": "Group",
        "participant_ids": ["42", "0042", 42, " 7 "],
        "message": {"text": "x"},
    }
    assert X.parse_dm(X.classify(view("POST", "/2/dm_conversations")), dumps(body)).recipients == (
        "42",
        "7",
    )
    body["participant_ids"] = ["42", "\uff17"]
    with pytest.raises(BadDMRequest):
        X.parse_dm(X.classify(view("POST", "/2/dm_conversations")), dumps(body))


@pytest.mark.parametrize("conversation", ["7-42", "42-7", "0007-0042", "7-00042"])
def test_one_to_one_conversation_ids_are_canonical_per_side(conversation: str) -> None:
    dm = X.parse_dm(
        X.classify(view("POST", f"/2/dm_conversations/{conversation}/messages")), b'{"text": "x"}'
    )
    assert dm.recipients == ("7", "42")
    assert dm.conversation_id == "7-42"
    assert X.recipients_for(dm, "7") == ("42",)


def test_group_conversation_ids_lose_leading_zeros() -> None:
    dm = X.parse_dm(
        X.classify(view("POST", "/2/dm_conversations/00123/messages")), b'{"text": "x"}'
    )
    assert dm.recipients == ("group:123",)
    assert dm.conversation_id == "123"


def test_oauth1_token_prefix_is_canonical() -> None:
    req = view("POST", SEND_PATHS[0], {"Authorization": 'OAuth oauth_token="0042-secret"'})
    assert X.account_from_request(X.classify(req)) == "42"
    token = f'OAuth oauth_token="{FULLWIDTH_42}-secret"'
    fullwidth = view("POST", SEND_PATHS[0], {"Authorization": token})
    assert X.account_from_request(X.classify(fullwidth)) is None


# --- XChat -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def chat_view(target: str, headers: dict[str, str] | None = None) -> RequestView:
    return view("POST", f"/2/chat/conversations/{target}/messages", {**JSON, **(headers or {})})


def test_the_spec_still_has_the_chat_send_we_judge(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/2/chat/conversations/{id}/messages"]["post"]
    assert op["operationId"] == "sendChatMessage"
    assert set(op) >= {"requestBody", "responses"} and "201" in op["responses"]
    request = spec["components"]["schemas"]["SendChatMessageRequest"]
    assert schema_errors(CHAT_BODY, request) == []


@pytest.mark.parametrize(
    ("target", "recipients", "conversation"),
    [
        ("42", ("42",), None),  # the recipient's user id: X builds the 1:1 conversation
        ("0042", ("42",), None),
        ("42-7", ("7", "42"), "7-42"),
        ("g123", (), "g123"),  # a group: members learnt, else the id stands for them
        ("G00123", (), "g123"),
    ],
)
def test_chat_sends_are_opaque_dms(
    target: str, recipients: tuple[str, ...], conversation: str | None
) -> None:
    req = chat_view(target, {"Authorization": 'OAuth oauth_token="7-secret"'})
    assert X.classify(req).kind is Kind.DM
    dm = X.parse_dm(X.classify(req), dumps(CHAT_BODY))
    assert dm.opaque is True
    assert dm.text == ""
    assert dm.recipients == recipients
    assert dm.conversation_id == conversation
    assert dm.account_hint == "7"


def test_chat_pair_resolves_to_the_other_participant() -> None:
    dm = X.parse_dm(X.classify(chat_view("42-7")), dumps(CHAT_BODY))
    assert X.recipients_for(dm, "7") == ("42",)
    assert X.recipients_for(dm, "99") == ("7-42",)


@pytest.mark.parametrize(
    ("target", "body", "status"),
    [
        ("42", {"message_id": "m"}, 400),
        ("42", {"encoded_message_create_event": "AAEC"}, 400),
        ("42", {"message_id": 5, "encoded_message_create_event": "AAEC"}, 400),
        ("42", {**CHAT_BODY, "conversation_token": 5}, 400),
        ("abc", CHAT_BODY, 400),
        ("g", CHAT_BODY, 400),
        (FULLWIDTH_42, CHAT_BODY, 400),
        ("1-x", CHAT_BODY, 400),
    ],
)
def test_unjudgeable_chat_sends_are_refused(target: str, body: dict[str, Any], status: int) -> None:
    with pytest.raises(BadDMRequest) as info:
        X.parse_dm(X.classify(chat_view(target)), dumps(body))
    assert info.value.status == status


def test_chat_send_must_be_json() -> None:
    req = view("POST", "/2/chat/conversations/42/messages", {"Content-Type": "text/plain"})
    with pytest.raises(BadDMRequest) as info:
        X.parse_dm(X.classify(req), dumps(CHAT_BODY))
    assert info.value.status == 415


def test_chat_hold_answers_the_specs_201_shape(spec: dict[str, Any]) -> None:
    req = chat_view("42")
    dm = X.parse_dm(X.classify(req), dumps(CHAT_BODY))
    answer = X.hold_response(X.classify(req), dm, "7", "hold-1")
    assert answer.status == 201
    assert answer.content_type.startswith("application/json")
    body = answer.body
    assert isinstance(body, dict)
    schema = spec["components"]["schemas"]["SendChatMessageResponseData"]
    assert set(schema["required"]) <= set(body["data"])
    base64.b64decode(body["data"]["encoded_message_event"], validate=True)
    assert body["dmgate"] == {"hold_id": "hold-1", "status": "pending"}
    assert X.hold_response(X.classify(req), dm, "7", "hold-1").body == body  # stable per hold


def test_chat_block_is_the_v2_problem_shape() -> None:
    answer = X.block_response(X.classify(chat_view("42")), "follow_timing: followed 2 minutes ago")
    assert answer.status == 403
    body = answer.body
    assert isinstance(body, dict)
    assert {"title", "detail", "type"} <= set(body)
    assert body["detail"] == "follow_timing: followed 2 minutes ago"


def test_a_reviewer_cannot_edit_an_encrypted_message() -> None:
    with pytest.raises(BadDMRequest, match="encrypted") as info:
        X.replace_text(X.classify(chat_view("42")), dumps(CHAT_BODY), "nicer text")
    assert info.value.status == 422


def test_chat_group_members_are_learnt() -> None:
    doc = {"data": {"id": "g123", "member_ids": ["7", "42", "0042"]}}
    facts = X.learn(X.classify(view("GET", "/2/chat/conversations/G0123")), None, 200, dumps(doc))
    assert facts == [ConversationMembers("g123", ("7", "42"))]
    assert X.learn(X.classify(view("GET", "/2/chat/conversations/42")), None, 200, dumps(doc)) == []


async def test_the_fake_takes_chat_sends_in_the_specs_shapes_and_records_them() -> None:
    fake = FakeX()
    fake.add_user("7", token="tok-7")
    auth = {"Authorization": "Bearer tok-7", **JSON}
    async with TestClient(TestServer(fake.app())) as client:
        ok = await client.post("/2/chat/conversations/42/messages", json=CHAT_BODY, headers=auth)
        assert ok.status == 201
        data = (await ok.json())["data"]
        base64.b64decode(data["encoded_message_event"], validate=True)
        bad = await client.post("/2/chat/conversations/x/messages", json=CHAT_BODY, headers=auth)
        assert bad.status == 400
        missing = await client.post(
            "/2/chat/conversations/42/messages", json={"message_id": "m"}, headers=auth
        )
        assert missing.status == 400
    assert [(m.api, m.conversation_id, m.text) for m in fake.sent] == [("xchat", "7-42", "")]
    assert fake.messages == []  # DM lookups never show XChat
    assert [r.path for r in fake.requests].count("/2/chat/conversations/42/messages") == 2


# --- whoami ------------------------------------------------------------------------------


async def test_whoami_asks_users_me_with_the_bearer_token_only() -> None:
    req = view(
        "POST",
        SEND_PATHS[0],
        {"Authorization": "Bearer tok-7", "Content-Type": "application/json", "X-Other": "1"},
        [("extra", "1")],
    )
    me = X.whoami(X.classify(req))
    assert me is not None
    assert (me.method, me.path) == ("GET", "/2/users/me")
    assert list(me.headers.items()) == [("Authorization", "Bearer tok-7")]
    assert list(me.query.items()) == []
    fake = FakeX()
    fake.add_user("7", username="sam", token="tok-7")
    status, body = await ask(fake.app(), me)
    assert status == 200
    facts = X.learn(X.classify(me), None, status, body)
    assert Identity("7") in facts


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": 'OAuth oauth_token="7-secret", oauth_signature="x"'},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer "},
    ],
)
def test_whoami_is_none_without_a_replayable_credential(headers: dict[str, str]) -> None:
    assert X.whoami(X.classify(view("POST", SEND_PATHS[0], headers))) is None
