"""Mastodon status edits, mentions as Mastodon finds them, and the requests the adapter
refuses because Rack could read them differently; the store remembers direct statuses
and retention forgets them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import SentMessage
from proxy.platforms.base import BadDMRequest, Kind, RefusedRequest, RequestView
from proxy.platforms.mastodon import MastodonPlatform, mentions
from proxy.store import Store
from proxy.store.retention import prune

M = MastodonPlatform()
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer t"}
BOUNDARY = "b0undary"


def view(method: str, path: str, query: str = "", headers: dict[str, str] | None = None):
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return RequestView(
        method,
        path,
        MultiDictProxy(MultiDict(pairs)),
        CIMultiDictProxy(CIMultiDict(headers or FORM)),
        query,
    )


# --- mentions: Mastodon's MENTION_RE, not Python's \w -----------------------------------


@pytest.mark.parametrize(
    "text,found",
    [
        ("@bob hi", ("bob",)),
        ("(@bob)", ("bob",)),
        ("a=@bob", ()),  # `=` may not precede a mention
        ("x@bob", ()),
        ("https://x.example/@bob", ()),
        ("²@bob", ("bob",)),  # `²` is \w to Python, not [[:word:]] to Ruby
        ("e\u0301@bob", ()),  # a combining mark is [[:word:]] to Ruby, not \w to Python
        ("a\u203f@bob", ()),  # connector punctuation likewise
        ("@bob@.example.com", ("bob",)),  # a domain starts with a word character
        ("@bob@Example.COM.", ("bob@example.com",)),
        ("@a@b@c", ("a@b",)),  # the next search starts where a match ended
        ("@bob.-x hi", ("bob.-x",)),
        ("@bob- and @bob.", ("bob",)),
        ("@\u212aate", ("kate",)),  # the Kelvin sign folds to k, as under Ruby's /i
    ],
)
def test_mentions_are_found_as_mastodon_finds_them(text, found):
    assert mentions(text) == found


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_status_edits_are_dm_candidates(method):
    call = M.classify(view(method, "/api/v1/statuses/0109.json"))
    assert (call.kind, call.endpoint, call.params["id"]) == (Kind.DM, "status_edit", "0109")


def test_reading_a_status_is_a_signal_and_deleting_it_passes():
    assert M.classify(view("GET", "/api/v1/statuses/5")).kind is Kind.SIGNAL
    assert M.classify(view("DELETE", "/api/v1/statuses/5")).kind is Kind.PASSTHROUGH
    with pytest.raises(RefusedRequest):
        M.classify(view("POST", "/api/v1/statuses/5"))


def test_an_edit_names_the_status_it_changes_and_judges_all_it_shows():
    call = M.classify(view("PUT", "/api/v1/statuses/0109"))
    body = b"status=%40bob+buy+now&spoiler_text=Offer&poll[options][]=yes&poll[options][]=no"
    dm = M.parse_dm(call, body)
    assert dm.edit_of == "109" and dm.recipients == ("bob",)
    assert dm.text == "Offer\n\n@bob buy now\n\nyes\nno"
    # An edit carries no visibility: whether it is a DM is the edited status's.
    assert M.parse_dm(call, body + b"&visibility=public").edit_of == "109"


def test_an_edit_of_an_id_mastodon_could_read_otherwise_is_refused():
    with pytest.raises(BadDMRequest):
        M.parse_dm(M.classify(view("PUT", "/api/v1/statuses/12abc")), b"status=hi")


def test_an_edit_held_answers_the_edited_status():
    call = M.classify(view("PUT", "/api/v1/statuses/77"))
    dm = M.parse_dm(call, b"status=%40bob+hi")
    body = M.hold_response(call, dm, "1", "hold-1").body
    assert body["id"] == "77" and body["edited_at"] and body["visibility"] == "direct"


# --- what the answers teach --------------------------------------------------------------


def _status(visibility: str) -> dict:
    return {
        "id": "0110",
        "visibility": visibility,
        "account": {"id": "1", "acct": "sam"},
        "mentions": [{"id": "2", "acct": "Bob"}, {"id": "3", "acct": "carol@Other.Example"}],
    }


def test_a_created_direct_status_teaches_its_id_and_mentions():
    call = M.classify(view("POST", "/api/v1/statuses"))

    facts = M.learn_sent(call, "1", 200, json.dumps(_status("direct")).encode())
    assert facts == [SentMessage("1", "110", ("bob", "carol@other.example"), True)]
    assert M.learn_sent(call, "1", 422, b"{}") == []
    assert M.learn_sent(call, "1", 200, b"not json") == []


def test_a_status_read_says_whether_it_is_direct_keyed_by_its_author():
    call = M.classify(view("GET", "/api/v1/statuses/110"))

    (fact,) = M.learn(call, "9", 200, json.dumps(_status("public")).encode())
    assert (fact.account, fact.message_id, fact.direct) == ("1", "110", False)


def test_the_lookup_carries_the_token_where_it_was():
    bearer = M.classify(view("PUT", "/api/v1/statuses/5"))
    assert M.edited_lookup(bearer, "5").headers["Authorization"] == "Bearer t"
    param = M.classify(view("PUT", "/api/v1/statuses/5", "access_token=tok", {"Content-Type": "x"}))
    lookup = M.edited_lookup(param, "5")
    assert lookup.path == "/api/v1/statuses/5" and lookup.query["access_token"] == "tok"
    assert "Authorization" not in lookup.headers


# --- parser differentials ----------------------------------------------------------------


def _part(disposition: str, value: str) -> str:
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n"


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.mark.parametrize(
    "parts",
    [
        [_part('form-data; name="visibility"; name="status"', "@bob buy")],
        [_part('form-data; name="status"; NAME="x"', "@bob buy")],
        [
            "--" + BOUNDARY + '\r\nContent-Disposition: form-data; name="x"\r\n'
            'Content-Disposition: form-data; name="status"\r\n\r\n@bob buy\r\n'
        ],
        [_part('form-data; name="status"', "@bob hi"), _part('form-data; name="status"', "buy")],
    ],
)
def test_ambiguous_multipart_parts_are_refused(parts):
    body = "".join(parts) + _part('form-data; name="visibility"', "direct") + f"--{BOUNDARY}--\r\n"
    with pytest.raises(BadDMRequest) as err:
        M.parse_dm(M.classify(view("POST", "/api/v1/statuses", "", MULTIPART)), body.encode())
    assert err.value.status == 400


def test_a_semicolon_in_the_name_parameter_value_is_no_second_parameter():
    body = _part('form-data; name="status"', "@bob hi; there") + _part(
        'form-data; name="visibility"', "direct"
    )
    call = M.classify(view("POST", "/api/v1/statuses", "", MULTIPART))
    assert M.parse_dm(call, (body + f"--{BOUNDARY}--\r\n").encode()).text == "@bob hi; there"


@pytest.mark.parametrize(
    "query,body",
    [
        ("a=1;b=2", b"status=%40bob+hi&visibility=direct"),
        ("", b"status=%40bob+hi&visibility=direct&in_reply_to_id=1&in_reply_to_id=2"),
        ("in_reply_to_id=1", b"status=%40bob+hi&visibility=direct&in_reply_to_id=2"),
        ("spoiler_text=Buy", b"status=%40bob+hi&visibility=direct"),
        ("poll[options][]=Buy", b"status=%40bob+hi&visibility=direct"),
    ],
)
def test_ambiguous_or_split_parameters_are_refused(query, body):
    with pytest.raises(BadDMRequest) as err:
        M.parse_dm(M.classify(view("POST", "/api/v1/statuses", query)), body)
    assert err.value.status == 400


def test_list_parameters_may_repeat():
    body = b"status=%40bob+hi&visibility=direct&media_ids[]=1&media_ids[]=2"
    assert M.parse_dm(M.classify(view("POST", "/api/v1/statuses")), body).recipients == ("bob",)


# --- the store remembers, retention forgets ------------------------------------------------


def test_direct_statuses_are_remembered_until_retention_forgets_them(store_url):
    now = datetime.now(UTC)

    async def scenario() -> list:
        store = await Store.open(store_url)
        try:
            s = store.signals
            facts = [
                SentMessage("1", "10", ("bob",), True),
                SentMessage("1", "11", ("bob",), False),
            ]
            await s.record_facts("mastodon", facts, now - timedelta(days=3))
            await s.record_facts("mastodon", [SentMessage("1", "12", ("amy",), True)], now)
            seen = [await s.sent_direct("mastodon", "1", i) for i in ("10", "11", "12")]
            other = await s.sent_direct("mastodon", "2", "10")  # keyed by the author
            pruned = await prune(store.db, now - timedelta(days=1))
            after = [await s.sent_direct("mastodon", "1", i) for i in ("10", "12")]
            return [seen, other, pruned["sent_messages"], after]
        finally:
            await store.close()

    seen, other, pruned, after = asyncio.run(scenario())
    assert seen == [("bob",), None, ("amy",)]
    assert other is None
    assert pruned == 1
    assert after == [None, ("amy",)]
