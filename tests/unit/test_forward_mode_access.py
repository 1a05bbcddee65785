"""Forward mode's decisions: which CONNECT targets are intercepted, tunnelled or refused,
proxy credentials, and the routes' host names."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from proxy.forward_mode.access import (
    Intercept,
    Refuse,
    Tunnel,
    decide,
    parse_authority,
    proxy_authorized,
)
from proxy.settings import Settings


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_every_default_route_owns_its_platform_host():
    hosts = settings().host_routes
    assert {h: name for h, (name, _) in hosts.items()} == {
        "api.x.com": "x",
        "api.twitter.com": "twitter",
        "api.linkedin.com": "linkedin",
        "www.linkedin.com": "linkedin-web",
        "graph.facebook.com": "meta",
        "graph.instagram.com": "instagram",
        "bsky.social": "bluesky",
    }


def test_route_hosts_default_to_the_default_routes_or_the_upstreams_own_name():
    s = settings(
        routes='{"x": "http://127.0.0.1:9000",'
        ' "social": {"upstream": "https://Mastodon.Example/", "platform": "mastodon"},'
        ' "plain": {"upstream": "http://10.0.0.5:8080", "platform": "none"},'
        ' "quiet": {"upstream": "https://quiet.example", "platform": "x", "hosts": []}}'
    )
    assert s.routes["x"].hosts == ["api.x.com"]
    assert s.routes["social"].hosts == ["mastodon.example"]
    assert s.routes["plain"].hosts == []
    assert s.routes["quiet"].hosts == []


@pytest.mark.parametrize(
    "routes, message",
    [
        ('{"a": {"upstream": "https://a.example", "platform": "x", "hosts": ["10.0.0.1"]}}', "IP"),
        ('{"a": {"upstream": "https://a.example", "platform": "x", "hosts": ["a b"]}}', "DNS"),
        (
            '{"a": {"upstream": "https://same.example", "platform": "none"},'
            ' "b": {"upstream": "https://same.example", "platform": "none"}}',
            "claimed by both",
        ),
        (
            '{"a": {"upstream": "https://a.example", "platform": "x", "ca_bundle": "/nope.pem"}}',
            "ca_bundle",
        ),
    ],
)
def test_bad_route_hosts_are_refused_with_a_clear_message(routes, message):
    with pytest.raises(ValidationError) as err:
        settings(routes=routes)
    assert message in str(err.value)


def test_intercept_only_owned_hosts_on_443():
    s = settings()
    assert decide(s, "api.x.com", 443) == Intercept("api.x.com", "x", s.routes["x"])
    assert isinstance(decide(s, "api.x.com", 80), Refuse)
    assert isinstance(decide(s, "evil.example", 443), Refuse)


def test_tunnel_allow_list_matches_names_ports_and_wildcards():
    s = settings(tunnel_hosts="upload.twitter.com, *.twimg.com, git.example:8443")
    assert decide(s, "upload.twitter.com", 443) == Tunnel("upload.twitter.com", 443)
    assert decide(s, "pbs.twimg.com", 443) == Tunnel("pbs.twimg.com", 443)
    assert isinstance(decide(s, "twimg.com", 443), Refuse)  # the wildcard is subdomains only
    assert isinstance(decide(s, "eviltwimg.com", 443), Refuse)
    assert decide(s, "git.example", 8443) == Tunnel("git.example", 8443)
    assert isinstance(decide(s, "git.example", 443), Refuse)
    assert isinstance(decide(s, "upload.twitter.com", 22), Refuse)


@pytest.mark.parametrize(
    "target",
    ["127.0.0.1:443", "[::1]:443", "10.1.2.3:443", "api.x.com", "api.x.com:0", "api.x.com:x"],
)
def test_connect_authorities_that_are_refused(target):
    with pytest.raises(ValueError):
        parse_authority(target)


def test_connect_authority_is_normalised():
    assert parse_authority("API.X.com.:443") == ("api.x.com", 443)


def test_proxy_credentials():
    open_proxy = settings()
    assert proxy_authorized(open_proxy, None)
    s = settings(proxy_auth="bot:pa:ss, ops:other")
    assert proxy_authorized(s, basic("bot", "pa:ss"))  # a password may hold a colon
    assert proxy_authorized(s, basic("ops", "other"))
    assert not proxy_authorized(s, None)
    assert not proxy_authorized(s, basic("bot", "other"))
    assert not proxy_authorized(s, "Bearer abc")
    assert not proxy_authorized(s, "Basic !!!not-base64")
    assert "pa:ss" not in repr(s)


def test_malformed_proxy_credentials_setting_is_refused():
    with pytest.raises(ValidationError, match="user:password"):
        settings(proxy_auth="just-a-password")
