"""Meta (Graph API): every spelling of a send is judged or refused, recipient and page ids
have one spelling, and `whoami` asks `/me` with the request's token."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import Identity
from proxy.platforms.base import BadDMRequest, Kind, RefusedRequest, RequestView
from proxy.platforms.meta import MetaPlatform

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.meta_upstream import FakeMeta  # noqa: E402
from tests.fakes.server import ask  # noqa: E402

META = MetaPlatform()
PAGE = "1122334455"
JSON = {"Content-Type": "application/json"}
FULLWIDTH_42 = "\uff14\uff12"


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


def send(recipient: Any, text: str = "hi") -> bytes:
    return json.dumps({"recipient": recipient, "message": {"text": text}}).encode()


def send_view(path: str = f"/v21.0/{PAGE}/messages") -> RequestView:
    return view("POST", path, headers=JSON)


# --- path spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/V21.0/{PAGE}/Messages.json/",
        f"/v21.0/{PAGE}/MESSAGES",
        "/ME/messages",
        f"/x/../v21.0/{PAGE}/messages;a=1",
    ],
)
def test_every_spelling_of_a_send_is_a_dm(path: str) -> None:
    assert META.classify(view("POST", path)).kind is Kind.DM


@pytest.mark.parametrize("override", ["post", "POST", " Post "])
def test_a_get_overridden_to_post_is_a_judged_send(override: str) -> None:
    query = [
        ("method", override),
        ("recipient", json.dumps({"id": "0042"})),
        ("message", json.dumps({"text": "hello"})),
        ("access_token", "tok"),
    ]
    req = view("GET", f"/v21.0/{PAGE}/messages", query)
    assert META.classify(req).kind is Kind.DM
    dm = META.parse_dm(META.classify(req), b"")
    assert (dm.recipients, dm.text, dm.account_hint) == (("42",), "hello", PAGE)
    with pytest.raises(BadDMRequest) as info:  # the text is in the URL: not editable
        META.replace_text(META.classify(req), b"", "edited")
    assert info.value.status == 422


def test_a_batch_by_get_with_a_post_override_is_opened() -> None:
    req = view("GET", "/v21.0/", [("method", "post"), ("batch", "[]")])
    assert META.classify(req).kind is Kind.DM


# --- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", [f"/v21.0/{PAGE}/messages", "/me/Messages.json"])
def test_other_methods_on_send_paths_are_refused(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        META.classify(view(method, path))
    assert info.value.status == 405
    assert method in str(info.value) and "accept only POST" in str(info.value)


@pytest.mark.parametrize("override", ["delete", "PUT"])
def test_a_get_overridden_to_another_method_is_refused(override: str) -> None:
    with pytest.raises(RefusedRequest, match="method="):
        META.classify(view("GET", f"/v21.0/{PAGE}/messages", [("method", override)]))


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reads_of_a_conversations_messages_pass(method: str) -> None:
    assert META.classify(view(method, "/v21.0/t_123/messages")).kind is Kind.PASSTHROUGH
    get = [("method", "get")]
    assert META.classify(view(method, "/v21.0/t_123/messages", get)).kind is Kind.PASSTHROUGH


def test_a_cors_preflight_passes() -> None:
    req = view("OPTIONS", "/me/messages", headers={"Access-Control-Request-Method": "POST"})
    assert META.classify(req).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    "item",
    [
        {"method": "POST", "relative_url": "v21.0/me/Messages"},
        {"method": "post", "relative_url": "/me/messages.json"},
        {"method": "GET", "relative_url": "me/messages?method=post&recipient=x"},
        {"method": "DELETE", "relative_url": f"{PAGE}/messages"},
        {"method": "POST", "relative_url": "me%2Fmessages"},
    ],
)
def test_batches_touching_a_send_path_are_refused(item: dict[str, str]) -> None:
    body = json.dumps({"batch": [{"method": "GET", "relative_url": "me"}, item]}).encode()
    with pytest.raises(BadDMRequest, match="batch"):
        META.parse_dm(META.classify(view("POST", "/", headers=JSON)), body)


# --- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", ["42", "0042", " 42 ", 42])
def test_recipient_ids_have_one_spelling(recipient: Any) -> None:
    assert META.parse_dm(META.classify(send_view()), send({"id": recipient})).recipients == ("42",)


@pytest.mark.parametrize("recipient", [4.2, 42.0, True, -42, FULLWIDTH_42, "4-2", "abc", None])
def test_odd_recipient_ids_are_refused(recipient: Any) -> None:
    with pytest.raises(BadDMRequest) as info:
        META.parse_dm(META.classify(send_view()), send({"id": recipient}))
    assert info.value.status == 400


def test_phone_numbers_are_one_person_however_formatted() -> None:
    a = META.parse_dm(META.classify(send_view()), send({"phone_number": "+1 (212) 555-2368"}))
    b = META.parse_dm(META.classify(send_view()), send({"phone_number": "+12125552368"}))
    assert a.recipients == b.recipients == ("phone:+12125552368",)
    with pytest.raises(BadDMRequest):
        META.parse_dm(
            META.classify(send_view()),
            send({"phone_number": "+1 212 555 \uff12\uff13\uff16\uff18"}),
        )


def test_the_page_in_the_path_is_canonical() -> None:
    assert META.account_from_request(META.classify(send_view(f"/v21.0/00{PAGE}/Messages"))) == PAGE
    assert META.account_from_request(META.classify(send_view("/me/messages"))) is None
    assert (
        META.account_from_request(META.classify(send_view(f"/v21.0/{FULLWIDTH_42}/messages")))
        is None
    )


# --- whoami --------------------------------------------------------------------------------


async def test_whoami_with_the_token_in_the_query() -> None:
    req = view(
        "POST",
        f"/v21.0/{PAGE}/messages",
        [("access_token", "page-token"), ("appsecret_proof", "abc"), ("recipient", "x")],
        {**JSON, "Authorization": "Bearer other"},
    )
    me = META.whoami(META.classify(req))
    assert me is not None
    assert (me.method, me.path) == ("GET", "/v21.0/me")
    assert list(me.query.items()) == [
        ("fields", "id,name"),
        ("access_token", "page-token"),
        ("appsecret_proof", "abc"),
    ]
    assert list(me.headers.items()) == []
    fake = FakeMeta()
    fake.add_page(PAGE, token="page-token")
    status, body = await ask(fake.app(), me)
    assert status == 200
    assert Identity(PAGE) in META.learn(META.classify(me), None, status, body)


async def test_whoami_with_the_token_in_the_header() -> None:
    req = view("POST", "/me/messages", headers={**JSON, "Authorization": "Bearer page-token"})
    me = META.whoami(META.classify(req))
    assert me is not None
    assert me.path == "/me"
    assert list(me.query.items()) == [("fields", "id,name")]
    assert list(me.headers.items()) == [("Authorization", "Bearer page-token")]
    fake = FakeMeta()
    fake.add_page(PAGE, token="page-token")
    status, body = await ask(fake.app(), me)
    assert Identity(PAGE) in META.learn(META.classify(me), None, status, body)


def test_whoami_is_none_without_a_token_it_can_see() -> None:
    assert META.whoami(META.classify(send_view())) is None
    assert (
        META.whoami(
            META.classify(view("POST", "/me/messages", headers={"Authorization": "Basic x"}))
        )
        is None
    )
