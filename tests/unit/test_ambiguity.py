"""The shared parser-differential refusals (proxy/platforms/ambiguity.py)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.platforms.ambiguity import (
    check_form,
    check_json_request,
    check_query,
    disposition_params,
    is_list_key,
    one_header,
    unique_pairs,
)
from proxy.platforms.base import BadDMRequest, RequestView


def view(query: str) -> RequestView:
    pairs = [tuple(p.split("=", 1)) for p in query.replace(";", "&").split("&") if p]
    return RequestView(
        "POST", "/", MultiDictProxy(MultiDict(pairs)), CIMultiDictProxy(CIMultiDict()), query
    )


def test_disposition_parameters_are_read_once_each():
    assert disposition_params('form-data; name="a;b"; filename="x.png"') == {
        "name": "a;b",
        "filename": "x.png",
    }
    assert disposition_params(r'form-data; name="say \"hi\""') == {"name": 'say "hi"'}
    for twice in ('form-data; name="a"; name="b"', 'form-data; name="a"; Name=b'):
        with pytest.raises(BadDMRequest, match="twice"):
            disposition_params(twice)


def test_a_header_given_twice_in_a_part_is_refused():
    assert one_header([("Content-Type", "x")], "content-disposition") is None
    with pytest.raises(BadDMRequest):
        one_header(
            [("content-disposition", "a"), ("Content-Disposition", "b")], "content-disposition"
        )


def test_keys_are_unique_unless_rails_lists():
    assert unique_pairs([("a[]", "1"), ("a[]", "2")], "form", is_list_key) == {"a[]": "2"}
    with pytest.raises(BadDMRequest, match="a is given twice in the form"):
        unique_pairs([("a", "1"), ("a", "2")], "form")
    assert check_form(b"a=1&b=%3B") == [("a", "1"), ("b", ";")]
    with pytest.raises(BadDMRequest):
        check_form(b"a;b=1")


def test_queries_split_only_on_ampersands_and_name_each_key_once():
    assert check_query(view("a=1&b=2")) == {"a": "1", "b": "2"}
    for query in ("a=1;b=2", "a=1&a=2"):
        with pytest.raises(BadDMRequest):
            check_query(view(query))
    with pytest.raises(BadDMRequest, match="both in the query string and the body"):
        check_json_request(view("text=x"), {"text": "y"})
