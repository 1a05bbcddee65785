"""Mastodon: every spelling of a status post is judged or refused, a mention names one
account however it is spelled, and `whoami` asks `verify_credentials`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import FollowerSnapshot, Identity
from proxy.platforms.base import Kind, RefusedRequest, RequestView
from proxy.platforms.mastodon import MastodonPlatform, mentions, normalize_acct

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.mastodon_upstream import FakeMastodon  # noqa: E402
from tests.fakes.server import ask  # noqa: E402

M = MastodonPlatform()
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer t"}


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


def direct(text: str) -> bytes:
    return urlencode({"status": text, "visibility": "direct"}).encode()


# --- path spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/statuses.json",
        "/api/v1/statuses.xml",
        "/API/V1/Statuses.JSON/",
        "/api/v1/statuses.html",
        "/api/v1/x/../statuses.json;p=1",
    ],
)
def test_every_spelling_of_a_status_post_is_a_dm_candidate(path: str) -> None:
    req = view("POST", path, FORM)
    assert M.classify(req).kind is Kind.DM
    assert M.parse_dm(M.classify(req), direct("@bob hi")).recipients == ("bob",)


def test_signals_take_a_format_suffix_too() -> None:
    assert M.classify(view("GET", "/api/v1/accounts/verify_credentials.json")).kind is Kind.SIGNAL
    assert M.classify(view("GET", "/api/v1/notifications/5.json")).kind is Kind.SIGNAL


# --- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/api/v1/statuses", "/api/v1/statuses.xml"])
def test_other_methods_on_the_status_path_are_refused(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        M.classify(view(method, path, FORM))
    assert info.value.status == 405
    assert method in str(info.value) and "accept only POST" in str(info.value)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reading_statuses_still_passes(method: str) -> None:
    req = view(method, "/api/v1/statuses", query=[("id[]", "1"), ("id[]", "2")])
    assert M.classify(req).kind is Kind.PASSTHROUGH


def test_a_browser_preflight_passes() -> None:
    req = view("OPTIONS", "/api/v1/statuses", {"Access-Control-Request-Method": "POST"})
    assert M.classify(req).kind is Kind.PASSTHROUGH


# --- mentions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Alice hi", ("alice",)),
        ("@alice hi", ("alice",)),
        ("@ALICE hi @alice", ("alice",)),
        ("@alice@Example.COM hi", ("alice@example.com",)),
        ("@Alice@example.com @alice@EXAMPLE.com", ("alice@example.com",)),
        ("@bob@münchen.social", ("bob@xn--mnchen-3ya.social",)),
        ("@bob@XN--MNCHEN-3YA.social", ("bob@xn--mnchen-3ya.social",)),
    ],
)
def test_mentions_name_one_account_however_spelled(text: str, expected: tuple[str, ...]) -> None:
    assert mentions(text) == expected
    assert (
        M.parse_dm(M.classify(view("POST", "/api/v1/statuses", FORM)), direct(text)).recipients
        == expected
    )


def test_a_local_account_with_the_instances_domain_is_the_local_account() -> None:
    local = MastodonPlatform(local_domains=["Social.Example."])
    req = view("POST", "/api/v1/statuses", FORM)
    for text in ("@alice hi", "@Alice@social.example hi", "@alice@SOCIAL.EXAMPLE hi"):
        assert local.parse_dm(local.classify(req), direct(text)).recipients == ("alice",)
    assert local.parse_dm(local.classify(req), direct("@alice@other.example")).recipients == (
        "alice@other.example",
    )
    # Without the domain the adapter cannot know; it keeps the mention as written.
    assert M.parse_dm(M.classify(req), direct("@alice@social.example")).recipients == (
        "alice@social.example",
    )


def test_learnt_accts_use_the_same_spelling() -> None:
    assert normalize_acct("@Bob@Example.Social") == "bob@example.social"
    followers = [{"id": "9", "acct": "Bob@Example.Social", "username": "Bob"}]
    req = view("GET", "/api/v1/accounts/0042/followers")
    facts = M.learn(M.classify(req), None, 200, json.dumps(followers).encode())
    assert FollowerSnapshot("42", ("bob@example.social",), first_page=True) in facts


# --- whoami --------------------------------------------------------------------------------


async def test_whoami_with_the_bearer_token() -> None:
    req = view("POST", "/api/v1/statuses", {**FORM, "Authorization": "Bearer tok-1"})
    me = M.whoami(M.classify(req))
    assert me is not None
    assert (me.method, me.path) == ("GET", "/api/v1/accounts/verify_credentials")
    assert list(me.headers.items()) == [("Authorization", "Bearer tok-1")]
    assert list(me.query.items()) == []
    fake = FakeMastodon()
    fake.add_account("1", "sam", token="tok-1")
    status, body = await ask(fake.app(), me)
    assert status == 200
    assert Identity("1") in M.learn(M.classify(me), None, status, body)


async def test_whoami_with_the_token_as_a_parameter() -> None:
    req = view("POST", "/api/v1/statuses", query=[("access_token", "tok-1"), ("x", "y")])
    me = M.whoami(M.classify(req))
    assert me is not None
    assert list(me.query.items()) == [("access_token", "tok-1")]
    assert list(me.headers.items()) == []
    fake = FakeMastodon()
    fake.add_account("1", "sam", token="tok-1")
    status, body = await ask(fake.app(), me)
    assert Identity("1") in M.learn(M.classify(me), None, status, body)


def test_whoami_is_none_without_a_token() -> None:
    assert M.whoami(M.classify(view("POST", "/api/v1/statuses"))) is None
    assert M.account_from_request(M.classify(view("POST", "/api/v1/statuses", FORM))) is None
