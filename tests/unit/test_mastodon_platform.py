"""The Mastodon adapter: what it classifies, extracts, learns and answers.

Request shapes follow mastodon/documentation `content/en/methods/statuses.md` (form data,
JSON or multipart; `visibility=direct` makes a private mention), answers its entities.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import Followed, FollowerSnapshot, Identity, InboundMessage, Profile
from proxy.platforms import PLATFORMS
from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RequestView
from proxy.platforms.mastodon import MastodonPlatform, NotADirectMessage, mentions

M = MastodonPlatform()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
BOUNDARY = "----dmgateBoundary7MA4YWxkTrZu0gW"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
PITCH = "@bob Hi Bob, thanks for the follow! Try Rocketly: https://rocketly.example"


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


def post(headers: dict[str, str] | None = None, query: list[tuple[str, str]] | None = None):
    return view("POST", "/api/v1/statuses", {"Authorization": "Bearer t", **(headers or {})}, query)


def form(**fields: Any) -> bytes:
    pairs = []
    for k, v in fields.items():
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k.replace("__", "[]"), item))
    return urlencode(pairs).encode()


def multipart(fields: list[tuple[str, str]], file: bool = False) -> bytes:
    out = b""
    for name, value in fields:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode() + b"\x00\xff binary\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


# --- registry and classification -------------------------------------------------------


def test_registered_under_its_name():
    assert PLATFORMS["mastodon"] is MastodonPlatform
    assert isinstance(PLATFORMS["mastodon"](), MastodonPlatform)


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/api/v1/statuses"),
        ("POST", "/api/v1/statuses/"),
        ("POST", "//api/v1//statuses"),
        ("POST", "/api/v1/statuses.json"),
        ("POST", "/api/v1/Statuses"),
        ("post", "/api/v1/statuses"),
        ("POST", "/api/v1/x/../statuses"),
        ("POST", "/api/v1/statuses;jsessionid=1"),
    ],
)
def test_status_posts_are_dm_candidates(method, path):
    assert M.classify(view(method, path)).kind is Kind.DM


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/statuses"),
        ("PUT", "/api/v1/statuses/1"),
        ("POST", "/api/v1/statuses/1/reblog"),
        ("POST", "/api/v1/statuses/1/favourite"),
        ("DELETE", "/api/v1/statuses/1"),
        ("POST", "/api/v2/media"),
        ("POST", "/api/v1/notifications/clear"),
        ("GET", "/api/v1/notifications/unread_count"),
        ("GET", "/api/v1/timelines/home"),
        ("GET", "/api/v1/accounts/1/following"),
    ],
)
def test_near_misses_pass_through(method, path):
    assert M.classify(view(method, path)).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/accounts/verify_credentials",
        "/api/v1/notifications",
        "/api/v1/notifications/123",
        "/api/v1/accounts/42/followers",
        "/api/v1/conversations",
    ],
)
def test_signals(path):
    assert M.classify(view("GET", path)).kind is Kind.SIGNAL


def test_credential_is_the_bearer_token_or_access_token_parameter():
    assert M.credential(post()) == "t"
    assert M.credential(view("GET", "/", query=[("access_token", "q")])) == "q"
    assert M.credential(view("GET", "/")) is None
    assert M.account_from_request(M.classify(post())) is None


# --- mentions --------------------------------------------------------------------------


def test_mentions_follow_mastodons_mention_regex():
    text = (
        "@Bob hi! cc @carol@Remote.Example and @bob again; mail dave@example.com, "
        "see https://x.example/@eve, (@frank.w) @g_h-i@sub.host.example."
    )
    assert mentions(text) == ("bob", "carol@remote.example", "frank.w", "g_h-i@sub.host.example")
    assert mentions("no mentions here") == ()


# --- parsing every encoding --------------------------------------------------------------


def test_form_encoded_direct_status():
    dm = M.parse_dm(M.classify(post(FORM)), form(status=PITCH, visibility="direct"))
    assert dm == ParsedDM(("bob",), PITCH)


def test_form_without_content_type_is_read_as_form_like_rack():
    dm = M.parse_dm(
        M.classify(post()), form(status="@ann@other.example hello there", visibility="direct")
    )
    assert dm.recipients == ("ann@other.example",)


def test_json_direct_status():
    body = json.dumps({"status": PITCH, "visibility": "direct", "language": "en"}).encode()
    assert M.parse_dm(M.classify(post(JSON)), body) == ParsedDM(("bob",), PITCH)


def test_multipart_direct_status_ignores_file_parts():
    body = multipart([("status", PITCH), ("visibility", "direct")], file=True)
    assert M.parse_dm(M.classify(post(MULTIPART)), body) == ParsedDM(("bob",), PITCH)


def test_visibility_in_the_query_counts_like_rails_params():
    dm = M.parse_dm(M.classify(post(FORM, [("visibility", "direct")])), form(status=PITCH))
    assert dm.recipients == ("bob",)
    # Either source naming `direct` is enough: judging a public post is harmless.
    dm = M.parse_dm(
        M.classify(post(FORM, [("visibility", "public")])), form(status=PITCH, visibility="direct")
    )
    assert dm.recipients == ("bob",)


def test_visibility_is_compared_without_case():
    assert M.parse_dm(M.classify(post(FORM)), form(status=PITCH, visibility="DIRECT")).text == PITCH


@pytest.mark.parametrize("visibility", [None, "public", "unlisted", "private", ""])
def test_non_direct_statuses_are_not_dms(visibility):
    fields = {"status": PITCH} | ({"visibility": visibility} if visibility is not None else {})
    with pytest.raises(NotADirectMessage):
        M.parse_dm(M.classify(post(FORM)), form(**fields))
    with pytest.raises(NotADirectMessage):
        M.parse_dm(M.classify(post(JSON)), json.dumps(fields).encode())


def test_media_only_direct_status_has_empty_text():
    dm = M.parse_dm(M.classify(post(FORM)), form(visibility="direct", media_ids__=["1", "2"]))
    assert dm.text == ""
    assert M.recipients_for(dm, "42") == ("42",)


@pytest.mark.parametrize(
    "headers,body,status",
    [
        (JSON, b"{nope", 400),
        (JSON, b'["status"]', 400),
        (JSON, b'{"status": "a", "status": "b", "visibility": "direct"}', 400),
        (JSON, b'{"status": 5, "visibility": "direct"}', 400),
        (JSON, b'{"status": "@bob hi", "visibility": "direct", "n": NaN}', 400),
        (JSON, b'{"status": "  ", "visibility": "direct"}', 400),
        (FORM, b"status=a&status=b&visibility=direct", 400),
        (FORM, b"status=%ff%fe&visibility=direct", 400),
        (FORM, b"\xff\xfe", 400),
        ({"Content-Type": "text/plain"}, b"status=hi&visibility=direct", 415),
        ({"Content-Type": "multipart/form-data"}, b"--x--", 400),
        (MULTIPART, b"garbage without parts", 400),
        (
            MULTIPART,
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="status"\r\n\r\nhi'.encode(),
            400,
        ),
    ],
)
def test_malformed_bodies_are_refused(headers, body, status):
    with pytest.raises(BadDMRequest) as err:
        M.parse_dm(M.classify(post(headers)), body)
    assert err.value.status == status


def test_status_text_in_the_query_is_refused():
    with pytest.raises(BadDMRequest) as err:
        M.parse_dm(
            M.classify(post(FORM, [("status", "@bob other")])),
            form(status=PITCH, visibility="direct"),
        )
    assert err.value.status == 400


def test_a_wrong_path_is_not_parsed():
    with pytest.raises(BadDMRequest):
        M.parse_dm(M.classify(view("POST", "/api/v1/media")), b"")


def test_recipients_drop_the_sender_when_keyed_alike_and_never_end_empty():
    dm = ParsedDM(("bob", "carol@x.example"), "hi")
    assert M.recipients_for(dm, "bob") == ("carol@x.example",)
    assert M.recipients_for(dm, "42") == ("bob", "carol@x.example")
    assert M.recipients_for(ParsedDM((), "note to self"), "42") == ("42",)


# --- replace_text ----------------------------------------------------------------------

EDIT = "@bob Hi Bob, thanks for following - no pitch, promise."


def test_replace_text_form_keeps_other_fields():
    body = form(status=PITCH, visibility="direct", spoiler_text="hey", media_ids__=["7"])
    # The content warning is read first: the edit keeps it as its first paragraph.
    out = M.replace_text(M.classify(post(FORM)), body, "hey\n\n" + EDIT)
    assert M.parse_dm(M.classify(post(FORM)), out).text == "hey\n\n" + EDIT
    pairs = parse_qsl(out.decode(), keep_blank_values=True)
    assert ("visibility", "direct") in pairs and ("spoiler_text", "hey") in pairs
    assert ("media_ids[]", "7") in pairs


def test_replace_text_json():
    body = json.dumps({"status": PITCH, "visibility": "direct", "sensitive": True}).encode()
    out = M.replace_text(M.classify(post(JSON)), body, EDIT + " ✓")
    assert json.loads(out) == {"status": EDIT + " ✓", "visibility": "direct", "sensitive": True}


def test_replace_text_multipart_edits_in_place():
    body = multipart([("status", PITCH), ("visibility", "direct")], file=True)
    out = M.replace_text(M.classify(post(MULTIPART)), body, EDIT + "\nünïcode")
    assert M.parse_dm(M.classify(post(MULTIPART)), out) == ParsedDM(("bob",), EDIT + "\nünïcode")
    assert out.endswith(body[body.index(b"\r\n--" + BOUNDARY.encode()) :])
    assert b"\x00\xff binary" in out


def test_replace_text_must_keep_the_mentions():
    body = form(status=PITCH, visibility="direct")
    with pytest.raises(BadDMRequest) as err:
        M.replace_text(M.classify(post(FORM)), body, "@carol hi instead")
    assert err.value.status == 422
    with pytest.raises(BadDMRequest):
        M.replace_text(M.classify(post(FORM)), body, "no mention at all")


def test_replace_text_refuses_an_empty_edit_without_media():
    with pytest.raises(BadDMRequest) as err:
        M.replace_text(
            M.classify(post(FORM)), form(status="note to self", visibility="direct"), " "
        )
    assert err.value.status == 422
    # Media keep an empty edit sendable.
    out = M.replace_text(
        M.classify(post(FORM)), form(status="x", visibility="direct", media_ids__=["1"]), ""
    )
    assert M.parse_dm(M.classify(post(FORM)), out).text == ""


# --- answers ---------------------------------------------------------------------------


def test_hold_answer_is_a_direct_status_entity():
    dm = M.parse_dm(
        M.classify(post(FORM)), form(status=PITCH + " @carol@x.example", visibility="direct")
    )
    answer = M.hold_response(M.classify(post(FORM)), dm, "42", "hold-1")
    assert answer.status == 200
    assert answer.content_type.startswith("application/json")
    body = answer.body
    assert isinstance(body, dict)
    assert body["visibility"] == "direct"
    assert body["id"].isdigit() and len(body["id"]) == 18
    assert body["account"]["id"] == "42"
    assert body["content"].startswith("<p>@bob Hi Bob")
    assert [m["acct"] for m in body["mentions"]] == ["bob", "carol@x.example"]
    assert body["mentions"][1]["url"] == "https://x.example/@carol"
    assert body["dmgate"] == {"hold_id": "hold-1", "status": "pending"}
    datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    again = M.hold_response(M.classify(post(FORM)), dm, "42", "hold-1").body
    assert isinstance(again, dict) and again["id"] == body["id"]


def test_hold_answer_escapes_html():
    dm = ParsedDM(("bob",), "@bob <b>hi</b>\nline two\n\npara")
    body = M.hold_response(M.classify(post()), dm, "42", "h").body
    assert isinstance(body, dict)
    assert body["content"] == "<p>@bob &lt;b&gt;hi&lt;/b&gt;<br />line two</p><p>para</p>"


def test_block_answer_is_mastodons_error_entity():
    answer = M.block_response(
        M.classify(post()), "template_reuse: same text already sent to 4 recipients"
    )
    assert answer.status == 403
    body = json.loads(answer.body_bytes())
    assert body["error"] == "template_reuse: same text already sent to 4 recipients"


# --- learning --------------------------------------------------------------------------

ACCOUNT = {"id": "42", "username": "alice", "acct": "alice", "display_name": "Alice A."}
BOB = {"id": "7", "username": "Bob", "acct": "Bob@Remote.Example", "display_name": "Bobby"}


def learn(path: str, doc: Any, account: str | None = "42", query=None, status: int = 200):
    return M.learn(
        M.classify(view("GET", path, query=query)), account, status, json.dumps(doc).encode()
    )


def test_verify_credentials_teaches_identity_and_names():
    facts = learn("/api/v1/accounts/verify_credentials", ACCOUNT, account=None)
    assert facts == [Identity("42"), Profile("42", ("Alice A.", "alice", "alice"))]


def test_follow_notifications_are_follows_with_their_time():
    doc = [
        {"id": "9", "type": "follow", "created_at": "2026-11-26T01:02:03.456Z", "account": BOB},
        {"id": "8", "type": "favourite", "created_at": "2026-11-26T01:00:00.000Z", "account": BOB},
    ]
    facts = learn("/api/v1/notifications", doc)
    at = datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=UTC)
    assert Followed("42", "bob@remote.example", at) in facts
    assert Profile("bob@remote.example", ("Bobby", "Bob")) in facts
    assert not [f for f in facts if isinstance(f, InboundMessage)]


def test_direct_mentions_mean_the_peer_wrote_first():
    direct = {"visibility": "direct", "created_at": "2026-11-26T01:00:00Z", "account": BOB}
    public = {**direct, "visibility": "public"}
    doc = [
        {
            "id": "3",
            "type": "mention",
            "created_at": "2026-11-26T01:00:01Z",
            "account": BOB,
            "status": direct,
        },
        {
            "id": "2",
            "type": "mention",
            "created_at": "2026-11-26T00:00:00Z",
            "account": {**BOB, "acct": "carol"},
            "status": public,
        },
    ]
    facts = learn("/api/v1/notifications", doc)
    inbound = [f for f in facts if isinstance(f, InboundMessage)]
    assert inbound == [
        InboundMessage("42", "bob@remote.example", datetime(2026, 11, 26, 1, tzinfo=UTC))
    ]


def test_notifications_of_an_unknown_caller_teach_only_names():
    doc = [{"id": "9", "type": "follow", "created_at": "2026-11-26T01:02:03Z", "account": BOB}]
    assert learn("/api/v1/notifications", doc, account=None) == [
        Profile("bob@remote.example", ("Bobby", "Bob"))
    ]


def test_single_notification_lookup():
    doc = {"id": "9", "type": "follow", "created_at": "2026-11-26T01:02:03Z", "account": BOB}
    assert any(isinstance(f, Followed) for f in learn("/api/v1/notifications/9", doc))


def test_follower_pages():
    facts = learn("/api/v1/accounts/42/followers", [BOB, ACCOUNT])
    assert facts[0] == FollowerSnapshot("42", ("bob@remote.example", "alice"), first_page=True)
    later = learn("/api/v1/accounts/42/followers", [BOB], query=[("max_id", "100")])
    assert later[0] == FollowerSnapshot("42", ("bob@remote.example",), first_page=False)
    newer = learn("/api/v1/accounts/42/followers", [BOB], query=[("min_id", "100")])
    assert newer[0].first_page is False
    assert learn("/api/v1/accounts/42/followers", [], query=[("since_id", "5")])[0].first_page


def test_conversations_with_a_last_status_by_the_peer():
    doc = [
        {
            "id": "1",
            "accounts": [BOB],
            "last_status": {
                "visibility": "direct",
                "created_at": "2026-11-26T01:00:00Z",
                "account": BOB,
            },
        },
        {
            "id": "2",
            "accounts": [BOB],
            "last_status": {
                "visibility": "direct",
                "created_at": "2026-11-26T01:00:00Z",
                "account": ACCOUNT,
            },
        },
    ]
    facts = learn("/api/v1/conversations", doc)
    assert [f for f in facts if isinstance(f, InboundMessage)] == [
        InboundMessage("42", "bob@remote.example", datetime(2026, 11, 26, 1, tzinfo=UTC))
    ]


@pytest.mark.parametrize(
    "path,body,status",
    [
        ("/api/v1/notifications", b"[]", 401),
        ("/api/v1/notifications", b"{not json", 200),
        ("/api/v1/notifications", b'"a string"', 200),
        ("/api/v1/accounts/verify_credentials", b"[]", 200),
        ("/api/v1/accounts/abc/followers", b"[]", 200),
        ("/api/v1/timelines/home", b"[]", 200),
    ],
)
def test_odd_answers_teach_nothing(path, body, status):
    assert M.learn(M.classify(view("GET", path)), "42", status, body) == []
