"""LinkedIn connection invitations and Sales Navigator: first contacts, judged like DMs.
Request shapes as real clients send them: LinkedIn's web client and tomquirk/linkedin-api's
`add_connection` (`verifyQuotaAndCreateV2` with `customMessage`), the legacy
`growth/normInvitations` (`message`), Sales Navigator's `salesApiMessageActions?action=
createMessage` and `salesApiConnection?action=connectV2` as automation code posts them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RefusedRequest
from proxy.platforms.linkedin import INVITEE_PROFILE, LinkedInPlatform
from tests.unit.test_linkedin_platform import view

LI = LinkedInPlatform()
DASH = "/voyager/api/voyagerRelationshipsDashMemberRelationships"
DASH_QUERY = [
    ("action", "verifyQuotaAndCreateV2"),
    (
        "decorationId",
        "com.linkedin.voyager.dash.deco.relationships.InvitationCreationResultWithInvitee-2",
    ),
]
NORM = "/voyager/api/growth/normInvitations"
SALES_MESSAGE = "/sales-api/salesApiMessageActions"
SALES_CONNECT = "/sales-api/salesApiConnection"
NOTE = "Hi Anna, loved your talk on onboarding, would be great to connect!"


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def dash_invite(profile: str = "ACoAAAinvitee", note: str | None = NOTE) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "invitee": {"inviteeUnion": {"memberProfile": f"urn:li:fsd_profile:{profile}"}}
    }
    if note is not None:
        doc["customMessage"] = note
    return doc


def norm_invite(profile: str = "ACoAAAinvitee", note: str | None = NOTE) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "emberEntityName": "growth/invitation/norm-invitation",
        "invitee": {INVITEE_PROFILE: {"profileId": profile}},
        "trackingId": "yvzykVorToqcOuvtxjSFMg==",
        "invitations": [],
    }
    if note is not None:
        doc["message"] = note
    return doc


def sales_message(body: str = NOTE, subject: str | None = "Quick question") -> dict[str, Any]:
    request: dict[str, Any] = {
        "body": body,
        "recipients": ["urn:li:fs_salesProfile:(ACwAAAlead,NAME_SEARCH,x1y2)"],
        "copyToCrm": False,
        "trackingId": "abc",
    }
    if subject is not None:
        request["subject"] = subject
    return {"createMessageRequest": request}


def parse(path: str, doc: Any, query: list[tuple[str, str]] | None = None) -> ParsedDM:
    return LI.parse_dm(LI.classify(view("POST", path, query)), dumps(doc))


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (DASH, DASH_QUERY),
        (DASH, [("action", "verifyQuotaAndCreate")]),
        (DASH, []),  # a plain Rest.li create
        ("/voyager/api/voyagerrelationshipsdashmemberrelationships/", DASH_QUERY),
        (NORM, []),
        (SALES_MESSAGE, [("action", "createMessage")]),
        (SALES_CONNECT, [("action", "connectV2")]),
        (SALES_CONNECT, [("action", "connect")]),
    ],
)
def test_invitations_and_sales_navigator_sends_are_dms(path: str, query: Any) -> None:
    call = LI.classify(view("POST", path, query))
    assert call.kind is Kind.DM
    # Sent with the Voyager session: the sender is asked of /voyager/api/me.
    whoami = LI.whoami(
        LI.classify(
            view("POST", path, query, {"Cookie": 'li_at=s; JSESSIONID="a"', "csrf-token": "a"})
        )
    )
    assert whoami is not None and whoami.path == "/voyager/api/me"


@pytest.mark.parametrize("path", [DASH, NORM, SALES_MESSAGE, SALES_CONNECT])
def test_other_methods_on_invitation_paths_are_refused(path: str) -> None:
    with pytest.raises(RefusedRequest):
        LI.classify(view("PUT", path))
    assert LI.classify(view("GET", path)).kind is Kind.PASSTHROUGH


def test_a_dash_invitation_is_a_message_to_the_invitee() -> None:
    assert parse(DASH, dash_invite(), DASH_QUERY) == ParsedDM(("ACoAAAinvitee",), NOTE)
    older = {"inviteeProfileUrn": "urn:li:fsd_profile:ACoAAAinvitee", "customMessage": NOTE}
    assert parse(DASH, older, DASH_QUERY) == ParsedDM(("ACoAAAinvitee",), NOTE)


@pytest.mark.parametrize("note", [None, ""])
def test_an_invitation_without_a_note_is_a_first_contact_without_text(note: str | None) -> None:
    assert parse(DASH, dash_invite(note=note), DASH_QUERY) == ParsedDM(("ACoAAAinvitee",), "")
    assert parse(NORM, norm_invite(note=note)) == ParsedDM(("ACoAAAinvitee",), "")
    assert parse(SALES_CONNECT, {"member": "ACwAAAlead"}, [("action", "connectV2")]) == (
        ParsedDM(("ACwAAAlead",), "")
    )


def test_legacy_and_sales_navigator_invitations() -> None:
    assert parse(NORM, norm_invite()) == ParsedDM(("ACoAAAinvitee",), NOTE)
    by_urn = {"inviteeUrn": "urn:li:fsd_profile:ACoAAAinvitee", "customMessage": NOTE}
    assert parse(NORM, by_urn) == ParsedDM(("ACoAAAinvitee",), NOTE)
    connect = {"member": "ACwAAAlead", "message": NOTE, "isEmailRequired": False}
    assert parse(SALES_CONNECT, connect, [("action", "connectV2")]) == ParsedDM(
        ("ACwAAAlead",), NOTE
    )


@pytest.mark.parametrize(
    ("path", "doc", "words"),
    [
        (DASH, {**dash_invite(), "inviteeProfileUrn": "urn:li:fsd_profile:B"}, "exactly one"),
        (DASH, {"customMessage": NOTE}, "exactly one"),
        (DASH, {"invitee": {"inviteeUnion": {"email": "a@b.c"}}}, "memberProfile"),
        (
            DASH,
            {"invitee": {"inviteeUnion": {"memberProfile": "A", "email": "a@b.c"}}},
            "memberProfile",
        ),
        (DASH, {**dash_invite(), "customMessage": 7}, "string"),
        (NORM, {**norm_invite(), "customMessage": "buy now"}, "both"),
        (NORM, {**norm_invite(), "invitations": [{"profileId": "B"}]}, "invitations"),
        (NORM, {**norm_invite(), "inviteeUrn": "urn:li:fsd_profile:B"}, "exactly one"),
        (SALES_CONNECT, {"message": NOTE}, "exactly one"),
        (SALES_MESSAGE, {"createMessageRequest": {"body": "x"}}, "recipients"),
        (
            SALES_MESSAGE,
            {
                "createMessageRequest": {
                    **sales_message()["createMessageRequest"],
                    "threadId": "2-a",
                }
            },
            "recipients",
        ),
    ],
)
def test_ambiguous_invitations_are_refused(path: str, doc: Any, words: str) -> None:
    with pytest.raises(BadDMRequest, match=words) as exc:
        parse(path, doc, [("action", "connectV2")] if path == SALES_CONNECT else None)
    assert exc.value.status == 400


def test_a_key_twice_in_an_invitation_is_refused() -> None:
    body = b'{"invitee": {"inviteeUnion": {"memberProfile": "A"}}, "customMessage": "hi",'
    body += b' "customMessage": "buy now"}'
    with pytest.raises(BadDMRequest, match="twice"):
        LI.parse_dm(LI.classify(view("POST", DASH, DASH_QUERY)), body)


def test_sales_navigator_messages_judge_subject_and_body() -> None:
    dm = parse(SALES_MESSAGE, sales_message(), [("action", "createMessage")])
    assert dm == ParsedDM(("ACwAAAlead",), "Quick question\n\n" + NOTE)
    reply = {"createMessageRequest": {"body": "Thanks!", "threadId": "2-abc", "copyToCrm": False}}
    assert parse(SALES_MESSAGE, reply, [("action", "createMessage")]) == ParsedDM(
        (), "Thanks!", conversation_id="2-abc"
    )


def test_edits_land_in_the_note_and_the_subject() -> None:
    call = LI.classify(view("POST", DASH, DASH_QUERY))
    edited = json.loads(LI.replace_text(call, dumps(dash_invite()), "Hi Anna, nice talk!"))
    assert edited == dash_invite(note="Hi Anna, nice talk!")
    assert json.loads(LI.replace_text(call, dumps(dash_invite()), ""))["customMessage"] == ""
    norm = LI.classify(view("POST", NORM))
    assert json.loads(LI.replace_text(norm, dumps(norm_invite()), "edited"))["message"] == "edited"
    sales = LI.classify(view("POST", SALES_MESSAGE, [("action", "createMessage")]))
    out = json.loads(LI.replace_text(sales, dumps(sales_message()), "New subject\n\nNew body"))
    assert out["createMessageRequest"]["subject"] == "New subject"
    assert out["createMessageRequest"]["body"] == "New body"
    assert LI.parse_dm(sales, dumps(out)).text == "New subject\n\nNew body"


def test_held_invitations_get_the_status_their_clients_check() -> None:
    normalized = {"Accept": "application/vnd.linkedin.normalized+json+2.1"}
    dash = LI.classify(view("POST", DASH, DASH_QUERY, normalized))
    dm = ParsedDM(("ACoAAAinvitee",), NOTE)
    answer = LI.hold_response(dash, dm, "ACoAAAme", "h1")
    assert answer.status == 200  # linkedin-api: anything but 200 is a failure
    body = json.loads(answer.body_bytes())
    assert body["data"]["value"]["invitationUrn"].startswith("urn:li:fsd_invitation:")
    assert body["included"][0]["entityUrn"] == body["data"]["value"]["invitationUrn"]
    assert body["dmgate"] == {"hold_id": "h1", "status": "pending"}
    plain = LI.hold_response(LI.classify(view("POST", DASH, DASH_QUERY)), dm, "me", "h1")
    assert "invitationUrn" in json.loads(plain.body_bytes())["value"]
    assert LI.hold_response(LI.classify(view("POST", NORM)), dm, "me", "h1").status == 201
    connect = LI.classify(view("POST", SALES_CONNECT, [("action", "connectV2")]))
    assert LI.hold_response(connect, dm, "me", "h1").status == 200
    sales = LI.classify(view("POST", SALES_MESSAGE, [("action", "createMessage")]))
    answer = LI.hold_response(sales, dm, "me", "h1")
    assert answer.status == 200 and "threadId" in json.loads(answer.body_bytes())["value"]
