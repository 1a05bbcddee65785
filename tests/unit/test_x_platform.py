"""The X adapter: what it classifies, extracts, learns and answers.

Request bodies for the v2 DM shapes are generated from X's own OpenAPI document (the
document has no DM examples, so a small generator fills each schema); v1.1 and webhook
bodies follow X's documentation pages quoted in `research/platform-apis.md`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import Followed, FollowerSnapshot, Identity, InboundMessage, Profile, Unfollowed
from proxy.platforms import PLATFORMS
from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RequestView
from proxy.platforms.x import XPlatform

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.fakes` must import at collection time
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.x_upstream import schema_errors  # noqa: E402

# X's own OpenAPI document (info.version 2.167), copied into the repository from
# /work/shared/specs/ so that the conformance tests run on every clone and in CI.
SPEC_PATH = REPO_ROOT / "tests" / "fixtures" / "x-api-v2-openapi.json"

X = XPlatform()
JSON = {"Content-Type": "application/json"}


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


# --- the OpenAPI document ----------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def resolve(node: Any, spec: dict[str, Any]) -> Any:
    """The schema with every `$ref` inlined and `description`s dropped."""
    if isinstance(node, list):
        return [resolve(n, spec) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return resolve(spec["components"]["schemas"][name], spec)
    return {k: resolve(v, spec) for k, v in node.items() if k != "description"}


def request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return resolve(body, spec)


def example(schema: dict[str, Any], ids: itertools.count) -> Any:
    """A full instance of `schema` (every property present), distinct numeric ids."""
    kind = schema.get("type")
    if kind == "object":
        return {name: example(sub, ids) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema["items"], ids) for _ in range(max(schema.get("minItems", 1), 1))]
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("pattern") == "^[0-9]{1,19}$":
        return str(next(ids))
    return "Thanks for the follow! Check out our product"


@pytest.fixture
def ids() -> itertools.count:
    return itertools.count(1_500_000_000_000_000_001)


# --- registry ----------------------------------------------------------------------------


def test_registry_knows_x_and_names_the_known_ones_for_a_typo() -> None:
    assert PLATFORMS["x"] is XPlatform
    assert isinstance(PLATFORMS["x"](), XPlatform)
    # Settings refuse the typo and name the known platforms (tests/unit/test_settings.py).
    assert "twiter" not in PLATFORMS


# --- classify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/2/dm_conversations/with/2244994945/messages",
        "/2/dm_conversations/with/2244994945/messages/",
        "/2/dm_conversations/1-2244994945/messages",
        "/2/dm_conversations/1578398451921985538/messages",
        "/2/dm_conversations",
        "/2/dm_conversations/",
        "/1.1/direct_messages/events/new.json",
        "/1.1/direct_messages/events/new",
        # Malformed ids are still DMs: parse_dm refuses them, they are never forwarded.
        "/2/dm_conversations/with/not-a-number/messages",
        # Path tricks a lenient server might route to the same endpoint.
        "//2/dm_conversations/with/1/messages",
        "/2/./dm_conversations/with/1/messages",
        "/2/tweets/../dm_conversations/with/1/messages",
        "/2/dm_conversations/with/1/messages;x=1",
    ],
)
def test_dm_sends_are_dm(path: str) -> None:
    assert X.classify(view("POST", path)).kind is Kind.DM


@pytest.mark.parametrize(
    "path",
    [
        "/2/users/me",
        "/2/users/me/",
        "/2/users/2244994945/followers",
        "/1.1/followers/ids.json",
        "/1.1/followers/list.json",
        "/2/dm_events",
        "/2/dm_conversations/with/2244994945/dm_events",
        "/2/dm_conversations/1-2/dm_events",
        "/1.1/direct_messages/events/list.json",
    ],
)
def test_follower_identity_and_dm_lookups_are_signals(path: str) -> None:
    assert X.classify(view("GET", path)).kind is Kind.SIGNAL


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # Other methods on DM-send paths are refused (test_platform_x_hardening.py).
        ("DELETE", "/2/dm_events/123"),
        ("GET", "/2/dm_events/123"),
        ("POST", "/2/dm_conversations/with/123/dm_events"),  # lookup path, not a send
        ("POST", "/2/dm_conversations/with/123/messages/extra"),
        ("POST", "/2/dm_conversations/with/123"),
        ("POST", "/2/tweets"),
        ("POST", "/2/users/me"),
        ("POST", "/2/users/123/following"),
        ("GET", "/2/users/123/following"),
        ("GET", "/1.1/direct_messages/events/show.json"),
        ("POST", "/1x1/direct_messages/events/new.json"),
        # XChat calls that send no message.
        ("POST", "/2/chat/conversations/123/typing"),
        ("POST", "/2/chat/conversations/123/keys"),
        ("POST", "/2/chat/conversations/group/initialize"),
    ],
)
def test_near_misses_pass_through(method: str, path: str) -> None:
    assert X.classify(view(method, path)).kind is Kind.PASSTHROUGH


# --- credential and account ------------------------------------------------------------------


def test_bearer_token_is_the_credential_and_names_no_account() -> None:
    req = view("GET", "/2/users/me", {"Authorization": "bearer  abc.DEF-123 "})
    assert X.credential(req) == "abc.DEF-123"
    assert X.account_from_request(X.classify(req)) is None


def test_oauth1_header_token_is_percent_decoded_and_names_the_account() -> None:
    header = (
        'OAuth oauth_consumer_key="ck", oauth_nonce="n", oauth_signature="s%2Fg%3D",'
        ' oauth_signature_method="HMAC-SHA1", oauth_timestamp="1", '
        'oauth_token="2244994945-ab%2Fc", oauth_version="1.0"'
    )
    req = view("POST", "/2/dm_conversations", {"Authorization": header})
    assert X.credential(req) == "2244994945-ab/c"
    assert X.account_from_request(X.classify(req)) == "2244994945"


def test_oauth1_token_in_the_query_string_counts_too() -> None:
    req = view("GET", "/2/users/me", query=[("oauth_token", "55-xyz")])
    assert X.credential(req) == "55-xyz"
    assert X.account_from_request(X.classify(req)) == "55"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": 'OAuth oauth_token="nodash"'}, {"Authorization": "Basic Zm9vOmJhcg=="}],
)
def test_no_account_without_an_oauth1_user_token(headers: dict[str, str]) -> None:
    assert X.account_from_request(X.classify(view("GET", "/2/users/me", headers))) is None


# --- parse_dm: the four shapes --------------------------------------------------------------


def test_parse_dm_to_participant_from_openapi_schema(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    schema = request_schema(spec, "/2/dm_conversations/with/{participant_id}/messages")
    body = example(schema, ids)
    assert schema_errors(body, schema) == []  # the generator makes what X accepts
    req = view("POST", "/2/dm_conversations/with/2244994945/messages", JSON)
    dm = X.parse_dm(X.classify(req), dumps(body))
    assert dm.recipients == ("2244994945",)
    assert dm.text == body["text"]
    assert dm.conversation_id is None


def test_parse_dm_to_one_to_one_conversation_from_openapi_schema(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    schema = request_schema(spec, "/2/dm_conversations/{dm_conversation_id}/messages")
    body = example(schema, ids)
    req = view("POST", "/2/dm_conversations/900-1000/messages", JSON)
    dm = X.parse_dm(X.classify(req), dumps(body))
    assert dm.recipients == ("900", "1000")
    assert dm.conversation_id == "900-1000"
    assert dm.text == body["text"]


def test_parse_dm_group_create_from_openapi_schema(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    schema = request_schema(spec, "/2/dm_conversations")
    body = example(schema, ids)
    assert body["conversation_type"] == "Group"
    req = view("POST", "/2/dm_conversations", JSON)
    dm = X.parse_dm(X.classify(req), dumps(body))
    assert dm.recipients == tuple(body["participant_ids"])
    assert len(dm.recipients) == 2
    assert dm.text == body["message"]["text"]


V1_BODY: dict[str, Any] = {
    "event": {
        "type": "message_create",
        "message_create": {
            "target": {"recipient_id": "2244994945"},
            "message_data": {
                "text": "Hello World!",
                "quick_reply": {"type": "options", "options": [{"label": "Yes"}]},
            },
        },
    }
}


def test_parse_dm_v1_events_new() -> None:
    req = view("POST", "/1.1/direct_messages/events/new.json", JSON)
    dm = X.parse_dm(X.classify(req), dumps(V1_BODY))
    assert dm == ParsedDM(("2244994945",), "Hello World!")


def test_v1_recipient_id_sent_as_a_number_is_accepted() -> None:
    body = copy.deepcopy(V1_BODY)
    body["event"]["message_create"]["target"]["recipient_id"] = 2244994945
    dm = X.parse_dm(X.classify(view("POST", "/1.1/direct_messages/events/new.json")), dumps(body))
    assert dm.recipients == ("2244994945",)


def test_parse_dm_with_only_attachments_has_empty_text(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    body = example(request_schema(spec, "/2/dm_conversations/with/{participant_id}/messages"), ids)
    del body["text"]
    dm = X.parse_dm(
        X.classify(view("POST", "/2/dm_conversations/with/1/messages", JSON)), dumps(body)
    )
    assert dm.text == ""
    v1 = copy.deepcopy(V1_BODY)
    data = v1["event"]["message_create"]["message_data"]
    del data["text"]
    data["attachment"] = {"type": "media", "media": {"id": "1455952740635586573"}}
    assert (
        X.parse_dm(X.classify(view("POST", "/1.1/direct_messages/events/new.json")), dumps(v1)).text
        == ""
    )


def test_parse_dm_names_the_oauth1_sender_as_hint() -> None:
    req = view(
        "POST",
        "/2/dm_conversations/with/7/messages",
        {"Authorization": 'OAuth oauth_token="42-secretpart"', **JSON},
    )
    assert X.parse_dm(X.classify(req), b'{"text": "hi"}').account_hint == "42"


# --- A-B resolution and groups ------------------------------------------------------------------


def test_one_to_one_conversation_resolves_to_the_other_participant() -> None:
    dm = X.parse_dm(
        X.classify(view("POST", "/2/dm_conversations/123-456/messages")), b'{"text": "hi"}'
    )
    assert X.recipients_for(dm, "123") == ("456",)
    assert X.recipients_for(dm, "456") == ("123",)
    # The caller is neither: the conversation itself stands for the recipient.
    assert X.recipients_for(dm, "789") == ("123-456",)


def test_existing_group_conversation_is_one_group_recipient() -> None:
    path = "/2/dm_conversations/1578398451921985538/messages"
    dm = X.parse_dm(X.classify(view("POST", path)), b'{"text": "hi all"}')
    assert dm.recipients == ("group:1578398451921985538",)
    assert dm.conversation_id == "1578398451921985538"
    assert X.recipients_for(dm, "123") == ("group:1578398451921985538",)


def test_group_create_drops_the_sender_if_listed() -> None:
    body = {
        "conversation_type": "Group",
        "participant_ids": ["1", "2", "3"],
        "message": {"text": "x"},
    }
    dm = X.parse_dm(X.classify(view("POST", "/2/dm_conversations")), dumps(body))
    assert X.recipients_for(dm, "2") == ("1", "3")
    assert X.recipients_for(dm, "9") == ("1", "2", "3")


def test_dm_to_oneself_keeps_its_recipient() -> None:
    dm = X.parse_dm(
        X.classify(view("POST", "/2/dm_conversations/with/5/messages")), b'{"text": "note"}'
    )
    assert X.recipients_for(dm, "5") == ("5",)


# --- parse_dm: refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/2/dm_conversations/with/1/messages", b'{"text": "hi"', "not valid JSON"),
        ("/2/dm_conversations/with/1/messages", b"", "not valid JSON"),
        ("/2/dm_conversations/with/1/messages", b'["hi"]', "JSON object"),
        ("/2/dm_conversations/with/1/messages", b'{"text": "ok", "text": "spam"}', "twice"),
        ("/2/dm_conversations/with/1/messages", b'{"text": NaN}', "not valid JSON"),
        ("/2/dm_conversations/with/1/messages", b"\xff\xfe{}", "UTF-8"),
        ("/2/dm_conversations/with/1/messages", b"{}", "text or attachments is required"),
        ("/2/dm_conversations/with/1/messages", b'{"text": ""}', "text or attachments"),
        ("/2/dm_conversations/with/1/messages", b'{"text": 5}', "text must be a string"),
        ("/2/dm_conversations/with/1/messages", b'{"text": "\\ud800"}', "lone surrogate"),
        ("/2/dm_conversations/with/abc/messages", b'{"text": "hi"}', "participant_id"),
        ("/2/dm_conversations/with/-1/messages", b'{"text": "hi"}', "participant_id"),
        ("/2/dm_conversations/abc/messages", b'{"text": "hi"}', "dm_conversation_id"),
        ("/2/dm_conversations/1-x/messages", b'{"text": "hi"}', "dm_conversation_id"),
        ("/2/dm_conversations", b'{"message": {"text": "hi"}}', "participant_ids"),
        (
            "/2/dm_conversations",
            b'{"participant_ids": [], "message": {"text": "x"}}',
            "participant_ids",
        ),
        (
            "/2/dm_conversations",
            b'{"participant_ids": ["1", "bob"], "message": {"text": "x"}}',
            "participant_ids",
        ),
        ("/2/dm_conversations", b'{"participant_ids": ["1", "2"]}', "message"),
        ("/2/dm_conversations", b'{"participant_ids": ["1", "2"], "message": {}}', "message.text"),
        (
            "/1.1/direct_messages/events/new.json",
            b'{"event": {"type": "message_create"}}',
            "message_create",
        ),
        ("/1.1/direct_messages/events/new.json", b'{"event": {"type": "other"}}', "event.type"),
        (
            "/1.1/direct_messages/events/new.json",
            b'{"event": {"type": "message_create", "message_create": {"target": {},'
            b' "message_data": {"text": "x"}}}}',
            "recipient_id",
        ),
    ],
)
def test_unjudgeable_dm_is_refused_with_400_and_says_why(
    path: str, body: bytes, needle: str
) -> None:
    with pytest.raises(BadDMRequest, match=needle) as info:
        X.parse_dm(X.classify(view("POST", path, JSON)), body)
    assert info.value.status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(content_type: str) -> None:
    req = view("POST", "/2/dm_conversations/with/1/messages", {"Content-Type": content_type})
    with pytest.raises(BadDMRequest, match="application/json") as info:
        X.parse_dm(X.classify(req), b'{"text": "hi"}')
    assert info.value.status == 415


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "Application/JSON; charset=utf-8"}])
def test_json_content_type_with_params_or_none_is_accepted(headers: dict[str, str]) -> None:
    req = view("POST", "/2/dm_conversations/with/1/messages", headers)
    assert X.parse_dm(X.classify(req), '{"text": "héllo"}'.encode()).text == "héllo"


# --- replace_text ------------------------------------------------------------------------------

EDIT = "Edited by a reviewer: grüße 👋"


def test_replace_text_participant_shape_keeps_the_rest_and_stays_valid(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    schema = request_schema(spec, "/2/dm_conversations/with/{participant_id}/messages")
    body = example(schema, ids)
    req = view("POST", "/2/dm_conversations/with/1/messages", JSON)
    out = json.loads(X.replace_text(X.classify(req), dumps(body), EDIT))
    assert out == {**body, "text": EDIT}
    assert schema_errors(out, schema) == []
    assert (
        X.parse_dm(X.classify(req), X.replace_text(X.classify(req), dumps(body), EDIT)).text == EDIT
    )


def test_replace_text_conversation_shape(spec: dict[str, Any], ids: itertools.count) -> None:
    schema = request_schema(spec, "/2/dm_conversations/{dm_conversation_id}/messages")
    body = example(schema, ids)
    req = view("POST", "/2/dm_conversations/1-2/messages", JSON)
    out = json.loads(X.replace_text(X.classify(req), dumps(body), EDIT))
    assert out == {**body, "text": EDIT}
    assert schema_errors(out, schema) == []


def test_replace_text_group_create_edits_message_text_only(
    spec: dict[str, Any], ids: itertools.count
) -> None:
    schema = request_schema(spec, "/2/dm_conversations")
    body = example(schema, ids)
    out = json.loads(
        X.replace_text(X.classify(view("POST", "/2/dm_conversations")), dumps(body), EDIT)
    )
    assert out["message"] == {**body["message"], "text": EDIT}
    assert out["participant_ids"] == body["participant_ids"]
    assert out["conversation_type"] == "Group"
    assert schema_errors(out, schema) == []


def test_replace_text_v1_edits_message_data_text_only() -> None:
    req = view("POST", "/1.1/direct_messages/events/new.json")
    out = json.loads(X.replace_text(X.classify(req), dumps(V1_BODY), EDIT))
    expected = copy.deepcopy(V1_BODY)
    expected["event"]["message_create"]["message_data"]["text"] = EDIT
    assert out == expected


def test_replace_text_to_empty_drops_text_when_attachments_carry_the_dm() -> None:
    req = view("POST", "/2/dm_conversations/with/1/messages")
    body = {"text": "hi", "attachments": [{"media_id": "1455952740635586573"}]}
    out = json.loads(X.replace_text(X.classify(req), dumps(body), ""))
    assert out == {"attachments": [{"media_id": "1455952740635586573"}]}


def test_replace_text_to_empty_without_attachments_is_refused() -> None:
    with pytest.raises(BadDMRequest, match="empty") as info:
        X.replace_text(
            X.classify(view("POST", "/2/dm_conversations/with/1/messages")), b'{"text": "a"}', ""
        )
    assert info.value.status == 422


# --- learn -------------------------------------------------------------------------------------


def test_users_me_teaches_the_identity() -> None:
    body = dumps({"data": {"id": "2244994945", "name": "X Dev", "username": "XDevelopers"}})
    assert X.learn(X.classify(view("GET", "/2/users/me")), None, 200, body) == [
        Identity("2244994945"),
        Profile("2244994945", ("X Dev", "XDevelopers")),
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, dumps({"data": {"id": "1"}})),
        (200, b"<html>oops</html>"),
        (200, b"[]"),
        (200, dumps({"data": "1"})),
        (200, dumps({"data": {"id": "not-numeric"}})),
        (200, dumps({"errors": [{"title": "x"}]})),
    ],
)
def test_users_me_learns_nothing_from_odd_answers(status: int, body: bytes) -> None:
    assert X.learn(X.classify(view("GET", "/2/users/me")), None, status, body) == []


FOLLOWERS_PAGE = dumps(
    {
        "data": [
            {"id": "6253282", "name": "API", "username": "API"},
            {"id": "2244994945", "name": "X Dev", "username": "XDevelopers"},
        ],
        "meta": {"result_count": 2, "next_token": "DFEDBNRFT3MHCZZZ"},
    }
)


def test_followers_first_page_snapshot() -> None:
    req = view("GET", "/2/users/783214/followers", query=[("max_results", "2")])
    assert X.learn(X.classify(req), None, 200, FOLLOWERS_PAGE) == [
        FollowerSnapshot("783214", ("6253282", "2244994945"), first_page=True),
        Profile("6253282", ("API", "API")),
        Profile("2244994945", ("X Dev", "XDevelopers")),
    ]


def test_followers_continuation_page_is_not_first() -> None:
    req = view("GET", "/2/users/783214/followers", query=[("pagination_token", "DFEDBNRFT3MHCZZZ")])
    snapshot, *_profiles = X.learn(X.classify(req), None, 200, FOLLOWERS_PAGE)
    assert isinstance(snapshot, FollowerSnapshot)
    assert snapshot.first_page is False


def test_followers_empty_answer_is_an_empty_first_page() -> None:
    body = dumps({"meta": {"result_count": 0}})
    assert X.learn(X.classify(view("GET", "/2/users/783214/followers")), None, 200, body) == [
        FollowerSnapshot("783214", (), first_page=True)
    ]


def test_v1_follower_ids_by_user_id_or_for_the_caller() -> None:
    body = dumps({"ids": [657693, 183709371], "next_cursor": 0, "previous_cursor": 0})
    by_id = view("GET", "/1.1/followers/ids.json", query=[("user_id", "783214")])
    assert X.learn(X.classify(by_id), "1", 200, body) == [
        FollowerSnapshot("783214", ("657693", "183709371"), first_page=True)
    ]
    mine = view("GET", "/1.1/followers/ids.json", query=[("cursor", "1374004777531007833")])
    assert X.learn(X.classify(mine), "42", 200, body) == [
        FollowerSnapshot("42", ("657693", "183709371"), first_page=False)
    ]
    by_handle = view("GET", "/1.1/followers/ids.json", query=[("screen_name", "twitterdev")])
    assert X.learn(X.classify(by_handle), "42", 200, body) == []


def test_v1_follower_list_uses_id_str() -> None:
    body = dumps(
        {
            "users": [
                {"id": 1, "id_str": "1", "name": "One", "screen_name": "one"},
                {"id_str": "22"},
            ],
            "next_cursor": 0,
        }
    )
    req = view("GET", "/1.1/followers/list.json", query=[("user_id", "7"), ("cursor", "-1")])
    assert X.learn(X.classify(req), None, 200, body) == [
        FollowerSnapshot("7", ("1", "22"), first_page=True),
        Profile("1", ("One", "one")),
    ]


DM_EVENTS = {
    "data": [
        {
            "id": "5",
            "event_type": "MessageCreate",
            "text": "later",
            "sender_id": "944480690",
            "dm_conversation_id": "944480690-1000",
            "created_at": "2022-10-19T21:00:00.000Z",
        },
        {
            "id": "4",
            "event_type": "MessageCreate",
            "text": "Hi everyone.",
            "sender_id": "944480690",
            "dm_conversation_id": "944480690-1000",
            "created_at": "2022-10-19T20:58:00.000Z",
        },
        {
            "id": "3",
            "event_type": "MessageCreate",
            "text": "mine",
            "sender_id": "1000",
            "dm_conversation_id": "944480690-1000",
            "created_at": "2022-10-19T20:50:00.000Z",
        },
        {
            "id": "2",
            "event_type": "ParticipantsJoin",
            "sender_id": "17200003",
            "participant_ids": ["944480690"],
            "created_at": "2022-10-19T20:45:58.000Z",
        },
        {"id": "1", "event_type": "MessageCreate", "text": "no sender field requested"},
    ],
    "meta": {"result_count": 5},
}


def test_dm_lookup_learns_who_wrote_to_the_account_earliest_first() -> None:
    facts = X.learn(X.classify(view("GET", "/2/dm_events")), "1000", 200, dumps(DM_EVENTS))
    assert facts == [
        InboundMessage("1000", "944480690", datetime(2022, 10, 19, 20, 58, tzinfo=UTC))
    ]


def test_dm_lookup_with_participant_counts_only_that_participant() -> None:
    req = view("GET", "/2/dm_conversations/with/944480690/dm_events")
    assert [f.sender for f in X.learn(X.classify(req), "1000", 200, dumps(DM_EVENTS))] == [
        "944480690"
    ]
    other = view("GET", "/2/dm_conversations/with/555/dm_events")
    assert X.learn(X.classify(other), "1000", 200, dumps(DM_EVENTS)) == []


def test_dm_lookup_without_account_reads_the_recipient_from_a_one_to_one_id() -> None:
    facts = X.learn(X.classify(view("GET", "/2/dm_events")), None, 200, dumps(DM_EVENTS))
    assert set(facts) == {
        InboundMessage("1000", "944480690", datetime(2022, 10, 19, 20, 58, tzinfo=UTC)),
        InboundMessage("944480690", "1000", datetime(2022, 10, 19, 20, 50, tzinfo=UTC)),
    }
    # With the participant path and no account there is no way to tell the recipient.
    events = {"data": [{"event_type": "MessageCreate", "sender_id": "9", "text": "x"}]}
    req = view("GET", "/2/dm_conversations/with/9/dm_events")
    assert X.learn(X.classify(req), None, 200, dumps(events)) == []


def test_v1_dm_list_learns_inbound_dms_only() -> None:
    body = {
        "events": [
            {
                "type": "message_create",
                "id": "2",
                "created_timestamp": "1517588749178",
                "message_create": {
                    "target": {"recipient_id": "1000"},
                    "sender_id": "77",
                    "message_data": {"text": "hello"},
                },
            },
            {
                "type": "message_create",
                "id": "1",
                "created_timestamp": "1517588749000",
                "message_create": {
                    "target": {"recipient_id": "77"},
                    "sender_id": "1000",
                    "message_data": {"text": "hi back"},
                },
            },
        ]
    }
    req = view("GET", "/1.1/direct_messages/events/list.json")
    assert X.learn(X.classify(req), "1000", 200, dumps(body)) == [
        InboundMessage("1000", "77", datetime.fromtimestamp(1517588749.178, tz=UTC))
    ]


def test_learn_ignores_requests_that_are_not_signals() -> None:
    req = view("POST", "/2/dm_conversations/with/1/messages")
    assert X.learn(X.classify(req), "1", 201, dumps({"data": {"dm_conversation_id": "1-2"}})) == []


# --- hold and block answers ---------------------------------------------------------------------


def test_hold_answer_for_participant_send_uses_numeric_pair_order() -> None:
    req = view("POST", "/2/dm_conversations/with/1000/messages")
    dm = ParsedDM(("1000",), "hi")
    answer = X.hold_response(X.classify(req), dm, "900", "hold-1")
    assert answer.status == 201
    body = json.loads(answer.body_bytes())
    assert body["data"]["dm_conversation_id"] == "900-1000"  # not "1000-900"
    assert body["dmgate"] == {"hold_id": "hold-1", "status": "pending"}
    assert "application/json" in answer.content_type


def test_hold_event_id_is_19_digits_and_stable_per_hold() -> None:
    req = view("POST", "/2/dm_conversations/with/1000/messages")
    dm = ParsedDM(("1000",), "hi")
    first = json.loads(X.hold_response(X.classify(req), dm, "900", "hold-1").body_bytes())
    again = json.loads(X.hold_response(X.classify(req), dm, "900", "hold-1").body_bytes())
    other = json.loads(X.hold_response(X.classify(req), dm, "900", "hold-2").body_bytes())
    event_id = first["data"]["dm_event_id"]
    assert event_id.isdigit() and len(event_id) == 19 and int(event_id) < 2**63
    assert again["data"]["dm_event_id"] == event_id
    assert other["data"]["dm_event_id"] != event_id


def test_hold_answer_for_existing_conversation_echoes_its_id() -> None:
    req = view("POST", "/2/dm_conversations/1578398451921985538/messages")
    dm = X.parse_dm(X.classify(req), b'{"text": "hi"}')
    body = json.loads(X.hold_response(X.classify(req), dm, "1", "h").body_bytes())
    assert body["data"]["dm_conversation_id"] == "1578398451921985538"


def test_hold_answer_for_group_create_invents_a_stable_numeric_conversation() -> None:
    req = view("POST", "/2/dm_conversations")
    dm = ParsedDM(("1", "2"), "hi all")
    body = json.loads(X.hold_response(X.classify(req), dm, "9", "h").body_bytes())
    conversation = body["data"]["dm_conversation_id"]
    assert conversation.isdigit() and len(conversation) == 19
    assert conversation != body["data"]["dm_event_id"]
    again = json.loads(X.hold_response(X.classify(req), dm, "9", "h").body_bytes())
    assert again["data"]["dm_conversation_id"] == conversation


def test_hold_answer_for_v1_is_an_event() -> None:
    req = view("POST", "/1.1/direct_messages/events/new.json")
    dm = X.parse_dm(X.classify(req), dumps(V1_BODY))
    answer = X.hold_response(X.classify(req), dm, "42", "hold-9")
    assert answer.status == 200
    body = json.loads(answer.body_bytes())
    event = body["event"]
    assert event["type"] == "message_create"
    assert len(event["id"]) == 19 and event["id"].isdigit()
    assert event["created_timestamp"].isdigit()
    assert event["message_create"] == {
        "target": {"recipient_id": "2244994945"},
        "sender_id": "42",
        "message_data": {"text": "Hello World!"},
    }
    assert body["dmgate"] == {"hold_id": "hold-9", "status": "pending"}


def tweepy_messages(body: dict[str, Any]) -> list[str]:
    """What tweepy's HTTPException puts in `api_messages` (tweepy/errors.py)."""
    messages = [e["message"] for e in body.get("errors", []) if "message" in e]
    return messages or ([body["detail"]] if "detail" in body else [])


def test_block_answer_v2_is_problem_json_clients_can_read() -> None:
    reason = "template_reuse: same text already sent to 4 recipients in 24h"
    answer = X.block_response(
        X.classify(view("POST", "/2/dm_conversations/with/1/messages")), reason
    )
    assert answer.status == 403
    body = json.loads(answer.body_bytes())
    assert body["title"] == "Forbidden"
    assert body["type"] == "about:blank"
    assert body["status"] == 403
    assert body["detail"] == reason
    assert tweepy_messages(body) == [reason]
    # twitter-api-v2 (Node) parses only bodies whose type contains application/json.
    assert "application/json" in answer.content_type
    assert body["dmgate"] == {"decision": "block", "reason": reason}


def test_block_answer_v1_uses_a_v1_error_code() -> None:
    reason = "follow_timing: followed 3 minutes ago"
    answer = X.block_response(
        X.classify(view("POST", "/1.1/direct_messages/events/new.json")), reason
    )
    assert answer.status == 403
    body = json.loads(answer.body_bytes())
    [error] = body["errors"]
    assert error["code"] == 151
    assert reason in error["message"]
    assert body["dmgate"]["decision"] == "block"


# --- webhooks ------------------------------------------------------------------------------------

SECRET = "consumer-secret-ABC"


def test_crc_challenge_known_answer() -> None:
    token = "crc-token-123"
    answer = X.webhook_challenge(MultiDictProxy(MultiDict([("crc_token", token)])), SECRET)
    assert answer is not None and answer.status == 200
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()
    ).decode()
    assert json.loads(answer.body_bytes()) == {"response_token": "sha256=" + expected}


def test_crc_without_token_is_not_a_challenge_and_without_secret_is_503() -> None:
    assert X.webhook_challenge(MultiDictProxy(MultiDict()), SECRET) is None
    answer = X.webhook_challenge(MultiDictProxy(MultiDict([("crc_token", "t")])), None)
    assert answer is not None and answer.status == 503
    assert "not configured" in json.loads(answer.body_bytes())["detail"]


def signed(body: bytes, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def test_webhook_signature_valid_and_invalid() -> None:
    body = b'{"for_user_id": "1"}'

    def headers(*values: str) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict([("X-Twitter-Webhooks-Signature", v) for v in values]))

    assert X.webhook_signature_valid(headers(signed(body)), body, SECRET)
    assert not X.webhook_signature_valid(headers(signed(body)), body + b" ", SECRET)
    assert not X.webhook_signature_valid(headers(signed(body, "other")), body, SECRET)
    assert not X.webhook_signature_valid(headers(), body, SECRET)
    assert not X.webhook_signature_valid(headers(signed(body), signed(body)), body, SECRET)
    assert not X.webhook_signature_valid(headers(signed(body)), body, None)


RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_account_activity_follow_unfollow_and_dm_events() -> None:
    body = {
        "for_user_id": "2244994945",
        "follow_events": [
            {
                "type": "follow",
                "created_timestamp": "1517588749178",
                "target": {"id": "2244994945"},
                "source": {"id": "3001"},
            },
            # The subscribed user following someone else is not a follow of the account.
            {
                "type": "follow",
                "created_timestamp": "1517588749178",
                "target": {"id": "3002"},
                "source": {"id": "2244994945"},
            },
            {
                "type": "unfollow",
                "created_timestamp": "1517588749200",
                "target": {"id": "2244994945"},
                "source": {"id": "3003"},
            },
        ],
        "direct_message_events": [
            {
                "type": "message_create",
                "id": "1",
                "created_timestamp": "1517588750000",
                "message_create": {
                    "target": {"recipient_id": "2244994945"},
                    "sender_id": "3004",
                    "message_data": {"text": "hello"},
                },
            },
            {
                "type": "message_create",
                "id": "2",
                "created_timestamp": "1517588751000",
                "message_create": {
                    "target": {"recipient_id": "3005"},
                    "sender_id": "2244994945",
                    "message_data": {"text": "outbound"},
                },
            },
        ],
    }
    assert X.webhook_facts(dumps(body), RECEIVED) == [
        Followed("2244994945", "3001", datetime.fromtimestamp(1517588749.178, tz=UTC)),
        Unfollowed("2244994945", "3003"),
        InboundMessage("2244994945", "3004", datetime.fromtimestamp(1517588750, tz=UTC)),
    ]


def activity(event_type: str, payload: dict[str, Any], user: str = "1111") -> bytes:
    return dumps(
        {
            "data": {
                "event_uuid": "2080761390344937796",
                "filter": {"user_id": user},
                "event_type": event_type,
                "tag": "t",
                "payload": payload,
            }
        }
    )


def test_activity_api_follow_uses_receive_time_both_payload_styles() -> None:
    docs_style = {"source": {"data": {"id": "4444"}}, "target": {"data": {"id": "1111"}}}
    spec_style = {"source": {"id": "4444"}, "target": {"id": "1111"}}
    for payload in (docs_style, spec_style):
        assert X.webhook_facts(activity("follow.follow", payload), RECEIVED) == [
            Followed("1111", "4444", RECEIVED)
        ]
    unfollow = activity("follow.unfollow", docs_style)
    assert X.webhook_facts(unfollow, RECEIVED) == [Unfollowed("1111", "4444")]


def test_activity_api_follow_by_the_watched_user_teaches_nothing() -> None:
    payload = {"source": {"data": {"id": "1111"}}, "target": {"data": {"id": "4444"}}}
    assert X.webhook_facts(activity("follow.follow", payload), RECEIVED) == []


def test_activity_api_dm_received_and_chat_received() -> None:
    dm_event = {
        "type": "message_create",
        "id": "2",
        "created_timestamp": "1784928224372",
        "message_create": {
            "target": {"recipient_id": "1111"},
            "sender_id": "2222",
            "message_data": {"text": "hello!"},
        },
    }
    received = activity("dm.received", {"direct_message_events": [dm_event], "users": {}})
    assert X.webhook_facts(received, RECEIVED) == [
        InboundMessage("1111", "2222", datetime.fromtimestamp(1784928224.372, tz=UTC))
    ]
    sent_event = copy.deepcopy(dm_event)
    sent_event["message_create"] = {"target": {"recipient_id": "2222"}, "sender_id": "1111"}
    sent = activity("dm.sent", {"direct_message_events": [sent_event]})
    assert X.webhook_facts(sent, RECEIVED) == []
    chat = activity(
        "chat.received",
        {
            "sender_id": "2222",
            "created_at_msec": "1784841183370",
            "conversation_id": "2222:1111",
            "encoded_event": "...",
        },
    )
    assert X.webhook_facts(chat, RECEIVED) == [
        InboundMessage("1111", "2222", datetime.fromtimestamp(1784841183.370, tz=UTC))
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[1, 2]",
        b'{"for_user_id": "x"}',
        b'{"data": 5}',
        b'{"for_user_id": "1", "follow_events": "nope"}',
        b'{"data": {"event_type": "follow.follow", "payload": null}}',
    ],
)
def test_odd_webhook_payloads_teach_nothing(body: bytes) -> None:
    assert X.webhook_facts(body, RECEIVED) == []
