"""The shared pieces of the adapters' hardening: route matching and method refusal
(`proxy.platforms.routes`), and recipient ids in one spelling (`proxy.platforms.ids`)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.platforms.base import BadDMRequest, RefusedRequest, RequestView, normalize_path
from proxy.platforms.ids import (
    canonical_did,
    canonical_domain,
    canonical_number,
    canonical_pair,
    canonical_phone,
    number_or_none,
    percent_decoded,
)
from proxy.platforms.routes import (
    identity_view,
    is_cors_preflight,
    refuse_other_methods,
    route_pattern,
)


def view(method: str, path: str = "/x", headers: dict[str, str] | None = None) -> RequestView:
    return RequestView(
        method,
        path,
        MultiDictProxy(MultiDict()),
        CIMultiDictProxy(CIMultiDict(headers or {})),
    )


# --- route_pattern ---------------------------------------------------------------------


SEND = route_pattern("/2/dm_conversations/with/{participant_id}/messages")


@pytest.mark.parametrize(
    "path",
    [
        "/2/dm_conversations/with/42/messages",
        "/2/DM_Conversations/WITH/42/Messages",
        "/2/dm_conversations/with/42/messages.json",
        "/2/dm_conversations/with/42/messages.xml",
        "/2/DM_Conversations/with/0042/messages.json/",
    ],
)
def test_literals_match_in_any_case_and_with_an_extension(path: str) -> None:
    m = SEND.fullmatch(normalize_path(path))
    assert m is not None
    assert m.group("participant_id").lstrip("0") == "42"


def test_parameters_keep_their_case() -> None:
    pattern = route_pattern("/conversations/{id}/events")
    m = pattern.fullmatch("/Conversations/urn:li:fs_conversation:2-AbC==/EVENTS")
    assert m is not None and m.group("id") == "urn:li:fs_conversation:2-AbC=="


@pytest.mark.parametrize(
    "path",
    ["/2/dm_conversations/with/42", "/2/dm_conversations/with/42/messages/x", "/2/messagesjson"],
)
def test_other_paths_do_not_match(path: str) -> None:
    assert SEND.fullmatch(normalize_path(path)) is None


def test_alternatives_prefix_params_and_no_extension() -> None:
    official = route_pattern("/v2/messages", "/rest/messages")
    assert official.fullmatch("/REST/Messages.json")
    assert official.fullmatch("/v3/messages") is None
    node = route_pattern("/{node}", prefix=r"(?:/v[0-9.]+)?", params={"node": "[0-9]+"})
    assert node.fullmatch("/v21.0/123.json")
    assert node.fullmatch("/v21.0/me") is None
    strict = route_pattern("/api/v1/statuses", extension=False)
    assert strict.fullmatch("/api/v1/statuses.json") is None


# --- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET", "HEAD", "OPTIONS", "FOO"])
def test_other_methods_are_refused_with_405_naming_the_method(method: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        refuse_other_methods(view(method, "/2/dm_conversations/with/1/messages"))
    assert info.value.status == 405
    assert isinstance(info.value, BadDMRequest)  # answered, never forwarded
    assert method in str(info.value) and "accept only POST" in str(info.value)


def test_the_send_method_and_declared_reads_pass() -> None:
    refuse_other_methods(view("post"))
    refuse_other_methods(view("GET"), reads={"GET", "HEAD"})
    refuse_other_methods(view("HEAD"), reads={"GET", "HEAD"})


def test_only_a_bodiless_cors_preflight_passes() -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Origin": "https://app.example"}
    assert is_cors_preflight(view("OPTIONS", headers=preflight))
    refuse_other_methods(view("OPTIONS", headers=preflight))
    for extra in ({"Content-Length": "12"}, {"Transfer-Encoding": "chunked"}):
        with pytest.raises(RefusedRequest):
            refuse_other_methods(view("OPTIONS", headers={**preflight, **extra}))
    with pytest.raises(RefusedRequest):
        refuse_other_methods(view("OPTIONS"))  # no preflight header: not a preflight


def test_identity_view_is_a_get_with_only_what_it_was_given() -> None:
    me = identity_view("/me", [("Cookie", "a=1"), ("Cookie", "b=2")], [("fields", "id")])
    assert me.method == "GET" and me.path == "/me"
    assert me.headers.getall("Cookie") == ["a=1", "b=2"]
    assert list(me.query.items()) == [("fields", "id")]


# --- numeric ids -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["42", " 42 ", "0042", "\t0042\n", 42, "000000000000000000042"])
def test_numbers_have_one_spelling(value: Any) -> None:
    assert canonical_number(value, "id") == "42"


def test_zero_stays_zero() -> None:
    assert canonical_number("000", "id") == "0"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("\uff14\uff12", "ASCII"),  # fullwidth: int() takes it, platforms do not
        ("\u0664\u0662", "ASCII"),  # Arabic-Indic
        ("4\uff12", "ASCII"),
        ("-42", "ASCII"),
        ("+42", "ASCII"),
        ("4 2", "ASCII"),
        ("", "non-empty"),
        ("   ", "non-empty"),
        (42.0, "numeric id"),
        (True, "numeric id"),
        (-1, "negative"),
        (None, "numeric id"),
        (["42"], "numeric id"),
    ],
)
def test_odd_numbers_are_refused_with_400(value: Any, needle: str) -> None:
    with pytest.raises(BadDMRequest, match=needle) as info:
        canonical_number(value, "recipient.id")
    assert info.value.status == 400
    assert number_or_none(value) is None


def test_too_many_digits_after_leading_zeros_are_gone() -> None:
    assert canonical_number("0" * 5 + "1" * 19, "id", 19) == "1" * 19
    with pytest.raises(BadDMRequest, match="more than 19"):
        canonical_number("1" * 20, "id", 19)


@pytest.mark.parametrize("value", ["7-42", "42-7", "0042-7", " 7-00042 "])
def test_pairs_are_canonical_per_side_and_smaller_first(value: str) -> None:
    assert canonical_pair(value, "id") == ("7", "42")


@pytest.mark.parametrize("value", ["7", "7-", "7-x", "\uff17-42", "1-2-3"])
def test_bad_pairs_are_refused(value: str) -> None:
    with pytest.raises(BadDMRequest):
        canonical_pair(value, "id")


def test_phone_numbers() -> None:
    assert canonical_phone("+1 (212) 555-2368", "p") == "+12125552368"
    assert canonical_phone("+1.212.555.2368", "p") == "+12125552368"
    for bad in ("+1 212 555 \uff12\uff13\uff16\uff18", "call me", "++1"):
        with pytest.raises(BadDMRequest):
            canonical_phone(bad, "p")


# --- other ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("münchen.social", "xn--mnchen-3ya.social"),
        ("MÜNCHEN.Social", "xn--mnchen-3ya.social"),
        ("XN--MNCHEN-3YA.social", "xn--mnchen-3ya.social"),
    ],
)
def test_domains(value: str, expected: str) -> None:
    assert canonical_domain(value) == expected


def test_percent_decoding_until_nothing_changes() -> None:
    assert percent_decoded("urn%3Ali%3Aperson%3Aabc") == "urn:li:person:abc"
    assert percent_decoded("urn%253Ali%253Aperson%253Aabc") == "urn:li:person:abc"
    assert percent_decoded("100%") == "100%"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("did:plc:abc123", "did:plc:abc123"),
        ("DID:PLC:abc123", "did:plc:abc123"),
        ("  did:Web:example.com ", "did:web:example.com"),
        ("did:plc:ABC", "did:plc:ABC"),  # the method-specific id keeps its case
        ("did:plc:", None),
        ("plc:abc", None),
        (42, None),
    ],
)
def test_dids(value: Any, expected: str | None) -> None:
    assert canonical_did(value) == expected
