"""The LinkedIn adapter: official Messages API and Voyager messaging — what it classifies,
extracts, learns and answers. Voyager bodies are built the way tomquirk/linkedin-api's
`send_message` builds them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import ConversationMembers, Identity, InboundMessage, Profile
from proxy.platforms import PLATFORMS
from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RequestView
from proxy.platforms.linkedin import MESSAGE_CREATE, MESSAGING_MEMBER, LinkedInPlatform

LI = LinkedInPlatform()
ME = "ACoAAAsender"
CREATE = [("action", "create")]


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


def message_event(text: str, attachments: list[Any] | None = None) -> dict[str, Any]:
    """tomquirk/linkedin-api's `message_event`."""
    return {
        "eventCreate": {
            "originToken": str(uuid.uuid4()),
            "value": {
                MESSAGE_CREATE: {
                    "attributedBody": {"text": text, "attributes": []},
                    "attachments": attachments or [],
                }
            },
            "trackingId": "abcdefghijklmnop",
        },
        "dedupeByClientGeneratedToken": False,
    }


def voyager_create(text: str, recipients: list[str]) -> dict[str, Any]:
    event = message_event(text)
    event["recipients"] = recipients
    event["subtype"] = "MEMBER_TO_MEMBER"
    return {"keyVersion": "LEGACY_INBOX", "conversationCreate": event}


CREATE_VIEW = view("POST", "/voyager/api/messaging/conversations", CREATE)
EVENT_VIEW = view("POST", "/voyager/api/messaging/conversations/2-abc/events", CREATE)
OFFICIAL_VIEW = view("POST", "/v2/messages", headers={"Content-Type": "application/json"})


def test_registered_under_its_name() -> None:
    assert PLATFORMS["linkedin"] is LinkedInPlatform
    assert isinstance(PLATFORMS["linkedin"](), LinkedInPlatform)


# --- classification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/v2/messages", []),
        ("POST", "/rest/messages", []),
        ("POST", "/v2/messages/", []),
        ("POST", "//v2//messages", []),
        ("POST", "/v2/x/../messages", []),
        ("POST", "/v2/messages;p=1", []),
        ("post", "/v2/messages", []),
        ("POST", "/voyager/api/messaging/conversations", CREATE),
        ("POST", "/voyager/api/messaging/conversations", []),  # a Rest.li create is a send
        ("POST", "/voyager/api/messaging/conversations", [("action", "x"), ("action", "create")]),
        ("POST", "/voyager/api/messaging/conversations/2-abc/events", CREATE),
        ("POST", "/voyager/api/messaging/conversations/urn:li:fs_conversation:2-a/events", []),
    ],
)
def test_sends_are_dms(method: str, path: str, query: list[tuple[str, str]]) -> None:
    assert LI.classify(view(method, path, query)).kind is Kind.DM


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        # GET on the official send path is refused (test_platform_linkedin_hardening.py).
        ("POST", "/v2/messagesX", []),
        ("POST", "/v2/messages/123", []),
        ("POST", "/v3/messages", []),
        ("POST", "/voyager/api/messaging/conversations", [("action", "markAllAsRead")]),
        ("POST", "/voyager/api/messaging/conversations/2-abc", []),  # mark as seen
        ("POST", "/voyager/api/messaging/conversations/2-abc", [("action", "typing")]),
        ("POST", "/voyager/api/messaging/conversations/2-abc/events", [("action", "typing")]),
        ("POST", "/voyager/api/relationships/invitations/123", [("action", "accept")]),
        # Invitations are first contacts now (test_linkedin_invitations.py), other
        # relationship actions are not.
        (
            "POST",
            "/voyager/api/voyagerRelationshipsDashMemberRelationships",
            [("action", "removeFromMyConnections")],
        ),
        ("POST", "/sales-api/salesApiConnection", [("action", "withdraw")]),
        ("POST", "/li/track", []),
        ("GET", "/voyager/api/identity/profiles/someone/profileView", []),
    ],
)
def test_near_misses_pass_through(method: str, path: str, query: list[tuple[str, str]]) -> None:
    assert LI.classify(view(method, path, query)).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    "path",
    [
        "/v2/me",
        "/rest/me",
        "/v2/userinfo",
        "/voyager/api/me",
        "/voyager/api/messaging/conversations",
        "/voyager/api/messaging/conversations/2-abc",
        "/voyager/api/messaging/conversations/2-abc/events",
    ],
)
def test_identity_and_conversation_reads_are_signals(path: str) -> None:
    assert LI.classify(view("GET", path)).kind is Kind.SIGNAL


def test_credential_is_the_bearer_token_or_the_li_at_cookie() -> None:
    assert LI.credential(view("GET", "/v2/me", headers={"Authorization": "Bearer tok"})) == "tok"
    cookies = {"Cookie": 'JSESSIONID="ajax:123"; li_at=AQEDAT-secret; lang=en'}
    assert LI.credential(view("GET", "/voyager/api/me", headers=cookies)) == "AQEDAT-secret"
    assert LI.credential(view("GET", "/voyager/api/me", headers={"Cookie": "lang=en"})) is None
    assert LI.credential(view("GET", "/v2/me")) is None


# --- parsing the official API -----------------------------------------------------------


def test_official_send_to_person_urns() -> None:
    doc = {
        "recipients": ["urn:li:person:abc123", "urn:li:person:def456"],
        "subject": "Hello",
        "body": "Hi both, quick question",
        "messageType": "MEMBER_TO_MEMBER",
    }
    dm = LI.parse_dm(LI.classify(OFFICIAL_VIEW), dumps(doc))
    # The subject is read too: it is part of what the recipient reads.
    assert dm == ParsedDM(("abc123", "def456"), "Hello\n\nHi both, quick question")


def test_official_reply_names_only_the_thread() -> None:
    doc = {"thread": "urn:li:messagingThread:2-ZmE=", "body": "Thanks!"}
    dm = LI.parse_dm(
        LI.classify(view("POST", "/rest/messages")), dumps(doc)
    )  # no Content-Type is fine
    assert dm == ParsedDM((), "Thanks!", conversation_id="2-ZmE=")


def test_official_attachment_only_message_has_empty_text() -> None:
    doc = {"recipients": ["urn:li:person:a"], "attachments": ["urn:li:digitalmediaAsset:X"]}
    assert LI.parse_dm(LI.classify(OFFICIAL_VIEW), dumps(doc)).text == ""


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"recipients": ["urn:li:person:a"]}, "body is required"),
        ({"body": "hi"}, "exactly one of recipients and thread"),
        (
            {"recipients": ["urn:li:person:a"], "thread": "urn:li:messagingThread:1", "body": "x"},
            "exactly one",
        ),
        ({"recipients": [], "body": "hi"}, "non-empty array"),
        ({"recipients": "urn:li:person:a", "body": "hi"}, "non-empty array"),
        ({"recipients": [42], "body": "hi"}, "member ids or URNs"),
        ({"recipients": ["urn:li:person:a"], "body": 5}, "body must be a string"),
        ({"thread": 7, "body": "hi"}, "thread must be a thread URN"),
    ],
)
def test_official_malformed_sends_are_refused(doc: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadDMRequest, match=fragment) as info:
        LI.parse_dm(LI.classify(OFFICIAL_VIEW), dumps(doc))
    assert info.value.status == 400


def test_official_send_must_be_json() -> None:
    form = view("POST", "/v2/messages", headers={"Content-Type": "text/plain"})
    with pytest.raises(BadDMRequest) as info:
        LI.parse_dm(LI.classify(form), b'{"recipients": ["urn:li:person:a"], "body": "hi"}')
    assert info.value.status == 415


# --- parsing Voyager --------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},  # tomquirk/linkedin-api: requests with data=json.dumps(...) sends no type
        {"Content-Type": "application/json; charset=UTF-8"},
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/vnd.linkedin.normalized+json+2.1"},
    ],
)
def test_voyager_create_is_parsed_whatever_the_content_type(headers: dict[str, str]) -> None:
    req = view("POST", "/voyager/api/messaging/conversations", CREATE, headers)
    body = dumps(voyager_create("Hi Anna, loved your post", ["ACoAAAanna", "urn:li:fsd_profile:B"]))
    assert LI.parse_dm(LI.classify(req), body) == ParsedDM(
        ("ACoAAAanna", "B"), "Hi Anna, loved your post"
    )


def test_voyager_create_accepts_the_older_body_field() -> None:
    doc = voyager_create("", ["A"])
    doc["conversationCreate"]["eventCreate"]["value"][MESSAGE_CREATE] = {"body": "old shape"}
    assert LI.parse_dm(LI.classify(CREATE_VIEW), dumps(doc)).text == "old shape"


def test_voyager_event_in_existing_conversation_names_the_conversation() -> None:
    dm = LI.parse_dm(LI.classify(EVENT_VIEW), dumps(message_event("Following up!")))
    assert dm == ParsedDM((), "Following up!", conversation_id="2-abc")
    urn_path = view(
        "POST", "/voyager/api/messaging/conversations/urn:li:fs_conversation:2-abc/events"
    )
    assert LI.parse_dm(LI.classify(urn_path), dumps(message_event("x"))).conversation_id == "2-abc"


def test_voyager_attachment_only_event_has_empty_text() -> None:
    body = dumps(message_event("", attachments=[{"id": "file"}]))
    assert LI.parse_dm(LI.classify(EVENT_VIEW), body).text == ""


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"conversationCreate": {}, "conversationCreate": {}}', "twice"),
        (b'{"keyVersion": "LEGACY_INBOX"}', "conversationCreate is missing"),
        (dumps({"conversationCreate": {"recipients": ["A"]}}), "eventCreate is missing"),
        (dumps(voyager_create("hi", [])), "non-empty array"),
        (dumps(voyager_create("", ["A"])), "attributedBody.text or"),
        (dumps(voyager_create("hi", ["A B"])), "member ids or URNs"),
    ],
)
def test_voyager_malformed_creates_are_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(BadDMRequest, match=fragment) as info:
        LI.parse_dm(LI.classify(CREATE_VIEW), body)
    assert info.value.status == 400


def test_voyager_form_body_is_unsupported_media() -> None:
    req = view(
        "POST",
        "/voyager/api/messaging/conversations",
        CREATE,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(BadDMRequest) as info:
        LI.parse_dm(LI.classify(req), b"text=hi")
    assert info.value.status == 415


def test_sender_is_dropped_from_learnt_members() -> None:
    dm = ParsedDM((ME, "ACoAAAanna"), "hi", conversation_id="2-abc")
    assert LI.recipients_for(dm, ME) == ("ACoAAAanna",)


# --- edits ------------------------------------------------------------------------------


def test_replace_text_official_round_trip() -> None:
    doc = {"recipients": ["urn:li:person:a"], "subject": "S", "body": "old"}
    edited = LI.replace_text(LI.classify(OFFICIAL_VIEW), dumps(doc), "S\n\nnew words")
    assert json.loads(edited) == {**doc, "body": "new words"}
    assert LI.parse_dm(LI.classify(OFFICIAL_VIEW), edited).text == "S\n\nnew words"
    # The first paragraph of an edit is the subject.
    edited = LI.replace_text(LI.classify(OFFICIAL_VIEW), dumps(doc), "T\n\nnew\n\nwords")
    assert json.loads(edited) == {**doc, "subject": "T", "body": "new\n\nwords"}
    with pytest.raises(BadDMRequest, match="subject") as exc:
        LI.replace_text(LI.classify(OFFICIAL_VIEW), dumps(doc), "no paragraph break")
    assert exc.value.status == 422


@pytest.mark.parametrize(
    ("req", "doc"),
    [
        (CREATE_VIEW, voyager_create("old text", ["A"])),
        (EVENT_VIEW, message_event("old text")),
    ],
)
def test_replace_text_voyager_round_trip(req: RequestView, doc: dict[str, Any]) -> None:
    edited = LI.replace_text(LI.classify(req), dumps(doc), "edited ✓")
    assert LI.parse_dm(LI.classify(req), edited).text == "edited ✓"
    original = LI.parse_dm(LI.classify(req), dumps(doc))
    assert LI.parse_dm(LI.classify(req), edited).recipients == original.recipients
    # Everything else is kept.
    assert json.loads(edited).keys() == doc.keys()


def test_replace_text_drops_attributes_that_index_into_the_old_text() -> None:
    doc = message_event("Hi @Anna")
    create = doc["eventCreate"]["value"][MESSAGE_CREATE]
    create["attributedBody"]["attributes"] = [{"start": 3, "length": 5}]
    edited = json.loads(LI.replace_text(LI.classify(EVENT_VIEW), dumps(doc), "Hello"))
    assert edited["eventCreate"]["value"][MESSAGE_CREATE]["attributedBody"]["attributes"] == []


def test_replace_text_refuses_an_empty_edit_without_attachment() -> None:
    with pytest.raises(BadDMRequest) as info:
        LI.replace_text(LI.classify(EVENT_VIEW), dumps(message_event("hi")), "")
    assert info.value.status == 422


# --- answers ----------------------------------------------------------------------------


def test_official_hold_answer_is_a_restli_create() -> None:
    answer = LI.hold_response(LI.classify(OFFICIAL_VIEW), ParsedDM(("a",), "hi"), "me", "H1")
    assert answer.status == 201
    assert answer.headers["x-restli-id"] == answer.headers["x-linkedin-id"]
    assert answer.body == {
        "id": answer.headers["x-restli-id"],
        "dmgate": {"hold_id": "H1", "status": "pending"},
    }
    again = LI.hold_response(LI.classify(OFFICIAL_VIEW), ParsedDM(("a",), "hi"), "me", "H1")
    assert again.headers == answer.headers  # a retry hears the same ids


def test_voyager_hold_answer_is_201_with_value() -> None:
    dm = ParsedDM((), "hi", conversation_id="2-abc")
    answer = LI.hold_response(LI.classify(EVENT_VIEW), dm, ME, "H2")
    assert answer.status == 201
    assert isinstance(answer.body, dict)
    value = answer.body["value"]
    assert value["conversationUrn"] == "urn:li:fs_conversation:2-abc"
    assert value["eventUrn"].startswith("urn:li:fs_event:(2-abc,5-")
    assert isinstance(value["createdAt"], int)
    assert answer.body["dmgate"] == {"hold_id": "H2", "status": "pending"}
    created = LI.hold_response(LI.classify(CREATE_VIEW), ParsedDM(("A",), "hi"), ME, "H3")
    assert created.status == 201
    assert isinstance(created.body, dict)
    assert created.body["value"]["conversationUrn"].startswith("urn:li:fs_conversation:2-")


@pytest.mark.parametrize("req", [OFFICIAL_VIEW, CREATE_VIEW, EVENT_VIEW])
def test_block_answer_is_restli_403(req: RequestView) -> None:
    answer = LI.block_response(
        LI.classify(req), "template_reuse: same text already sent to 4 recipients"
    )
    assert answer.status == 403
    assert isinstance(answer.body, dict)
    assert answer.body["status"] == 403
    assert answer.body["code"] == "ACCESS_DENIED"
    assert answer.body["serviceErrorCode"] == 100
    assert "template_reuse" in answer.body["message"]
    assert answer.body["dmgate"]["decision"] == "block"


# --- learning ---------------------------------------------------------------------------


def mini(profile_id: str, first: str = "Anna", last: str = "Lee") -> dict[str, Any]:
    return {
        "entityUrn": f"urn:li:fs_miniProfile:{profile_id}",
        "objectUrn": "urn:li:member:123",
        "firstName": first,
        "lastName": last,
        "publicIdentifier": f"{first.lower()}-{last.lower()}",
    }


def test_learns_identity_from_official_me_and_userinfo() -> None:
    me = {"id": "yrZCpj2Z12", "localizedFirstName": "Sam", "localizedLastName": "Send"}
    assert LI.learn(LI.classify(view("GET", "/v2/me")), None, 200, dumps(me)) == [
        Identity("yrZCpj2Z12"),
        Profile("yrZCpj2Z12", ("Sam Send",)),
    ]
    info = {"sub": "782bbtaQ", "given_name": "Sam", "family_name": "Send"}
    assert LI.learn(LI.classify(view("GET", "/v2/userinfo")), None, 200, dumps(info))[
        0
    ] == Identity("782bbtaQ")


def test_learns_identity_from_voyager_me() -> None:
    doc = {"plainId": 123, "miniProfile": mini(ME, "Sam", "Send"), "premiumSubscriber": False}
    facts = LI.learn(LI.classify(view("GET", "/voyager/api/me")), None, 200, dumps(doc))
    assert facts == [Identity(ME), Profile(ME, ("Sam Send", "sam-send"))]


def test_learns_identity_from_normalized_voyager_me() -> None:
    urn = f"urn:li:fs_miniProfile:{ME}"
    doc = {"data": {"plainId": 1, "*miniProfile": urn}, "included": [mini(ME)]}
    assert LI.learn(LI.classify(view("GET", "/voyager/api/me")), None, 200, dumps(doc))[
        0
    ] == Identity(ME)


def conversation(cid: str, others: list[str], last_from: str | None = None) -> dict[str, Any]:
    conv: dict[str, Any] = {
        "entityUrn": f"urn:li:fs_conversation:{cid}",
        "participants": [{MESSAGING_MEMBER: {"miniProfile": mini(o)}} for o in others],
    }
    if last_from:
        conv["events"] = [
            {
                "createdAt": 1_700_000_000_000,
                "subtype": "MEMBER_TO_MEMBER",
                "from": {MESSAGING_MEMBER: {"miniProfile": mini(last_from)}},
            }
        ]
    return conv


def test_learns_members_and_inbound_messages_from_conversation_lists() -> None:
    doc = {"elements": [conversation("2-a", ["X"], last_from="X"), conversation("2-b", ["Y", "Z"])]}
    facts = LI.learn(
        LI.classify(view("GET", "/voyager/api/messaging/conversations")), ME, 200, dumps(doc)
    )
    assert ConversationMembers("2-a", ("X", ME)) in facts
    assert ConversationMembers("2-b", ("Y", "Z", ME)) in facts
    inbound = [f for f in facts if isinstance(f, InboundMessage)]
    assert [(f.account, f.sender) for f in inbound] == [(ME, "X")]
    assert inbound[0].at is not None and inbound[0].at.year == 2023
    assert Profile("Y", ("Anna Lee", "anna-lee")) in facts


def test_own_last_message_is_not_inbound_and_unknown_caller_still_learns_members() -> None:
    doc = {"elements": [conversation("2-a", ["X"], last_from=ME)]}
    facts = LI.learn(
        LI.classify(view("GET", "/voyager/api/messaging/conversations")), ME, 200, dumps(doc)
    )
    assert not [f for f in facts if isinstance(f, InboundMessage)]
    facts = LI.learn(
        LI.classify(view("GET", "/voyager/api/messaging/conversations")), None, 200, dumps(doc)
    )
    assert ConversationMembers("2-a", ("X",)) in facts


def test_learns_members_of_one_conversation_from_the_path() -> None:
    doc = conversation("2-a", ["X"])
    del doc["entityUrn"]
    req = view("GET", "/voyager/api/messaging/conversations/2-a")
    assert ConversationMembers("2-a", ("X", ME)) in LI.learn(LI.classify(req), ME, 200, dumps(doc))


def test_learns_from_normalized_conversation_lists() -> None:
    member_urn = "urn:li:fs_messagingMember:(2-a,X)"
    doc = {
        "data": {"*elements": ["urn:li:fs_conversation:2-a"]},
        "included": [
            {
                "$type": "com.linkedin.voyager.messaging.Conversation",
                "entityUrn": "urn:li:fs_conversation:2-a",
                "*participants": [member_urn],
            },
            {"entityUrn": member_urn, "*miniProfile": "urn:li:fs_miniProfile:X"},
            mini("X"),
        ],
    }
    facts = LI.learn(
        LI.classify(view("GET", "/voyager/api/messaging/conversations")), ME, 200, dumps(doc)
    )
    assert ConversationMembers("2-a", ("X", ME)) in facts


def test_learns_inbound_messages_from_conversation_events() -> None:
    events = conversation("2-a", [], last_from="X")["events"] * 2
    req = view("GET", "/voyager/api/messaging/conversations/2-a/events")
    facts = LI.learn(LI.classify(req), ME, 200, dumps({"elements": events}))
    inbound = [f for f in facts if isinstance(f, InboundMessage)]
    assert [(f.account, f.sender) for f in inbound] == [(ME, "X")]  # one per sender


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"elements": "x"}', b'{"miniProfile": 5}'])
def test_weird_answers_teach_nothing(body: bytes) -> None:
    for path in ("/voyager/api/me", "/voyager/api/messaging/conversations", "/v2/me"):
        assert LI.learn(LI.classify(view("GET", path)), ME, 200, body) == []


def test_failed_answers_teach_nothing() -> None:
    doc = {"id": "abc"}
    assert LI.learn(LI.classify(view("GET", "/v2/me")), None, 401, dumps(doc)) == []
    assert LI.learn(LI.classify(view("POST", "/v2/me")), None, 200, dumps(doc)) == []


# --- Voyager messenger ("dash") endpoint -------------------------------------------------

DASH_VIEW = view(
    "POST",
    "/voyager/api/voyagerMessagingDashMessengerMessages",
    [("action", "createMessage")],
    {"Content-Type": "application/json; charset=UTF-8"},
)


def dash_body(text: str, conversation: str | None = None, to: list[str] | None = None) -> bytes:
    """The body LinkedIn's web client posts (captured shapes quoted in the adapter)."""
    message: dict[str, Any] = {
        "body": {"attributes": [], "text": text},
        "renderContentUnions": [],
        "originToken": "ecfb3d0a-b406-485e-93b7-8593a4906c6c",
    }
    if conversation:
        message["conversationUrn"] = conversation
    doc: dict[str, Any] = {
        "message": message,
        "mailboxUrn": f"urn:li:fsd_profile:{ME}",
        "trackingId": "x",
        "dedupeByClientGeneratedToken": False,
    }
    if to:
        doc["hostRecipientUrns"] = to
    return dumps(doc)


def test_dash_create_message_is_a_dm_and_its_siblings_are_not() -> None:
    assert LI.classify(DASH_VIEW).kind is Kind.DM
    other = view(
        "POST", "/voyager/api/voyagerMessagingDashMessengerMessages", [("action", "recall")]
    )
    assert LI.classify(other).kind is Kind.PASSTHROUGH


def test_dash_new_conversation_names_host_recipients() -> None:
    dm = LI.parse_dm(
        LI.classify(DASH_VIEW), dash_body("Hi Anna", to=["urn:li:fsd_profile:ACoAAAanna"])
    )
    assert dm == ParsedDM(("ACoAAAanna",), "Hi Anna")


def test_dash_reply_names_the_conversation() -> None:
    urn = f"urn:li:msg_conversation:(urn:li:fsd_profile:{ME},2-MTZmYzRj==)"
    assert LI.parse_dm(LI.classify(DASH_VIEW), dash_body("Thanks", urn)) == ParsedDM(
        (), "Thanks", conversation_id="2-MTZmYzRj=="
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (dash_body("hi"), "hostRecipientUrns or message.conversationUrn"),
        (dash_body("", to=["A"]), "message.body.text or"),
        (dumps({"message": {"text": "hi"}}), "message.body is missing"),
    ],
)
def test_dash_malformed_sends_are_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(BadDMRequest, match=fragment):
        LI.parse_dm(LI.classify(DASH_VIEW), body)


def test_dash_replace_text_and_hold_answer() -> None:
    body = dash_body("old", to=["A"])
    edited = LI.replace_text(LI.classify(DASH_VIEW), body, "new")
    assert LI.parse_dm(LI.classify(DASH_VIEW), edited) == ParsedDM(("A",), "new")
    answer = LI.hold_response(LI.classify(DASH_VIEW), ParsedDM(("A",), "hi"), ME, "H9")
    assert answer.status == 200
    assert isinstance(answer.body, dict)
    assert answer.body["value"]["entityUrn"].startswith(
        f"urn:li:msg_message:(urn:li:fsd_profile:{ME},"
    )
    assert answer.body["dmgate"]["hold_id"] == "H9"
