"""LinkedIn: every spelling of a message send is judged or refused, member URNs reduce to
one id, and `whoami` asks the right API for the sender."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import Identity
from proxy.platforms.base import Kind, RefusedRequest, RequestView
from proxy.platforms.linkedin import MESSAGE_CREATE, LinkedInPlatform

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.linkedin_upstream import FakeLinkedIn  # noqa: E402
from tests.fakes.server import ask  # noqa: E402

LI = LinkedInPlatform()
CREATE = [("action", "create")]
JSON = {"Content-Type": "application/json"}
VOYAGER_HEADERS = {
    "Cookie": 'li_at=cookie-1; JSESSIONID="ajax:123"',
    "csrf-token": "ajax:123",
    "x-restli-protocol-version": "2.0.0",
    "x-li-track": '{"clientVersion": "1.13"}',
    "x-li-lang": "en_US",
    "User-Agent": "Mozilla/5.0 (tool)",
    "Content-Type": "application/json",
    "Accept": "application/vnd.linkedin.normalized+json+2.1",
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


def official(recipients: list[Any]) -> bytes:
    return dumps({"recipients": recipients, "subject": "s", "body": "hello"})


def voyager_create(recipients: list[Any]) -> bytes:
    event = {"value": {MESSAGE_CREATE: {"attributedBody": {"text": "hi"}, "attachments": []}}}
    create = {"eventCreate": event, "recipients": recipients, "subtype": "MEMBER_TO_MEMBER"}
    return dumps({"keyVersion": "LEGACY_INBOX", "conversationCreate": create})


# --- path spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/V2/Messages.json/", []),
        ("/REST/messages.xml", []),
        ("/voyager/api/Messaging/Conversations", CREATE),
        ("/voyager/api/messaging/conversations.json", [("action", "CREATE")]),
        ("/voyager/api/messaging/conversations", [("Action", "create")]),
        ("/Voyager/API/messaging/conversations/2-AbC/Events/", CREATE),
        ("/voyager/api/voyagermessagingdashmessengermessages", [("action", "CREATEMESSAGE")]),
        ("/voyager/api/x/../voyagerMessagingDashMessengerMessages;p=1", []),
    ],
)
def test_every_spelling_of_a_send_is_a_dm(path: str, query: list[tuple[str, str]]) -> None:
    assert LI.classify(view("POST", path, query)).kind is Kind.DM


def test_conversation_ids_in_the_path_keep_their_case_and_lose_their_encoding() -> None:
    body = dumps(json.loads(voyager_create(["x"]))["conversationCreate"])
    for spelled in ("2-AbC", "urn:li:fs_conversation:2-AbC", "urn%3Ali%3Afs_conversation%3A2-AbC"):
        req = view("POST", f"/voyager/api/messaging/conversations/{spelled}/events", CREATE)
        assert LI.parse_dm(LI.classify(req), body).conversation_id == "2-AbC"


# --- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET", "HEAD"])
@pytest.mark.parametrize("path", ["/v2/messages", "/rest/messages", "/V2/Messages.json"])
def test_official_send_paths_take_only_post(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        LI.classify(view(method, path))
    assert info.value.status == 405
    assert method in str(info.value) and "accept only POST" in str(info.value)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        "/voyager/api/messaging/conversations",
        "/voyager/api/messaging/conversations/2-abc/events",
        "/voyager/api/voyagerMessagingDashMessengerMessages",
    ],
)
def test_voyager_send_paths_refuse_writes_other_than_post(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest):
        LI.classify(view(method, path, CREATE))


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/voyager/api/messaging/conversations", Kind.SIGNAL),
        ("GET", "/voyager/api/messaging/conversations/2-abc/events", Kind.SIGNAL),
        ("HEAD", "/voyager/api/messaging/conversations", Kind.PASSTHROUGH),
        ("GET", "/voyager/api/voyagerMessagingDashMessengerMessages", Kind.PASSTHROUGH),
        ("POST", "/voyager/api/messaging/conversations", Kind.PASSTHROUGH),  # other action
    ],
)
def test_voyager_reads_and_other_actions_keep_working(method: str, path: str, kind: Kind) -> None:
    query = [("action", "markAllAsRead")] if method == "POST" else []
    assert LI.classify(view(method, path, query)).kind is kind


# --- member ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recipient",
    [
        "abc",
        " abc ",
        "urn:li:person:abc",
        "URN:LI:Person:abc",
        "urn%3Ali%3Aperson%3Aabc",
        "urn%253Ali%253Aperson%253Aabc",
        " urn%3Ali%3Aperson%3Aabc ",
    ],
)
def test_official_recipients_reduce_to_one_member_id(recipient: str) -> None:
    req = view("POST", "/v2/messages", headers=JSON)
    assert LI.parse_dm(LI.classify(req), official([recipient])).recipients == ("abc",)


def test_member_ids_keep_their_case_and_repeats_collapse() -> None:
    req = view("POST", "/v2/messages", headers=JSON)
    dm = LI.parse_dm(
        LI.classify(req), official(["urn:li:person:ABC", "abc", "urn%3Ali%3Aperson%3Aabc"])
    )
    assert dm.recipients == ("ABC", "abc")


@pytest.mark.parametrize(
    "recipient",
    [
        "ACoAAAanna",
        "urn:li:fsd_profile:ACoAAAanna",
        "urn:li:FS_MINIPROFILE:ACoAAAanna",
        "urn%3Ali%3Afsd_profile%3AACoAAAanna",
    ],
)
def test_voyager_recipients_reduce_to_one_profile_id(recipient: str) -> None:
    req = view("POST", "/voyager/api/messaging/conversations", CREATE)
    assert LI.parse_dm(LI.classify(req), voyager_create([recipient])).recipients == ("ACoAAAanna",)


def test_other_urns_stay_whole_with_one_prefix_spelling() -> None:
    req = view("POST", "/v2/messages", headers=JSON)
    dm = LI.parse_dm(LI.classify(req), official(["URN:li:member:123", "urn%3Ali%3Amember%3A123"]))
    assert dm.recipients == ("urn:li:member:123",)


# --- whoami --------------------------------------------------------------------------------


async def test_official_whoami_is_v2_me_with_the_token_only() -> None:
    req = view(
        "POST",
        "/rest/messages",
        [("oauth2_access_token", "x")],
        {"Authorization": "Bearer tok", "LinkedIn-Version": "202401", **JSON},
    )
    me = LI.whoami(LI.classify(req))
    assert me is not None
    assert (me.method, me.path) == ("GET", "/v2/me")
    assert list(me.headers.items()) == [("Authorization", "Bearer tok")]
    assert list(me.query.items()) == []
    fake = FakeLinkedIn()
    fake.add_member("ACoAA1", person_id="p1", token="tok")
    status, body = await ask(fake.app(), me)
    assert status == 200
    assert Identity("p1") in LI.learn(LI.classify(me), None, status, body)


async def test_voyager_whoami_is_voyager_me_with_the_session_headers() -> None:
    req = view("POST", "/voyager/api/messaging/conversations", CREATE, VOYAGER_HEADERS)
    me = LI.whoami(LI.classify(req))
    assert me is not None
    assert (me.method, me.path) == ("GET", "/voyager/api/me")
    sent = {k.lower() for k in me.headers}
    assert sent == {
        "cookie",
        "csrf-token",
        "x-restli-protocol-version",
        "x-li-track",
        "x-li-lang",
        "user-agent",
    }
    assert me.headers["Cookie"] == VOYAGER_HEADERS["Cookie"]
    assert list(me.query.items()) == []
    fake = FakeLinkedIn()
    fake.add_member("ACoAA1", li_at="cookie-1")
    status, body = await ask(fake.app(), me)
    assert status == 200
    assert Identity("ACoAA1") in LI.learn(LI.classify(me), None, status, body)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/messages", {}),
        ("/v2/messages", {"Cookie": "li_at=abc"}),  # official API: a cookie is no token
        ("/voyager/api/messaging/conversations", {}),
        ("/voyager/api/messaging/conversations", {"Cookie": "JSESSIONID=x"}),
        # The credential dmgate keys is the bearer token; a cookie answer would not be it.
        (
            "/voyager/api/messaging/conversations",
            {"Authorization": "Bearer t", "Cookie": "li_at=c"},
        ),
    ],
)
def test_whoami_is_none_without_the_credential_it_needs(path: str, headers: dict[str, str]) -> None:
    assert LI.whoami(LI.classify(view("POST", path, CREATE, headers))) is None


def test_no_account_is_taken_from_the_request() -> None:
    req = view(
        "POST", "/voyager/api/voyagerMessagingDashMessengerMessages", headers=VOYAGER_HEADERS
    )
    assert LI.account_from_request(LI.classify(req)) is None
