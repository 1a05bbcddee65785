"""The fake X speaks TLS as api.x.com and checks OAuth 1.0a signatures against the signed URL.

These are the fakes behind forward-proxy tests: a client signs `https://api.x.com/...`, the
request reaches the fake on 127.0.0.1, and only a signature over that original URL passes.
"""

from __future__ import annotations

import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import tweepy
from oauthlib.oauth1 import Client as OAuth1Client

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.fakes` must import at collection time
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.server import FakeAppThread  # noqa: E402
from tests.fakes.tls import TestCA  # noqa: E402
from tests.fakes.x_upstream import FakeX, FakeXThread  # noqa: E402

CONSUMER_KEY, CONSUMER_SECRET = "ck-forward", "cs-forward-secret"
ACCESS_TOKEN, TOKEN_SECRET = "42-forwardtoken", "ts-forward-secret"
DM_PATH = "/2/dm_conversations/with/123/messages"
DM_URL = "https://api.x.com" + DM_PATH
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


@pytest.fixture
def fake() -> FakeX:
    state = FakeX()
    state.add_oauth1_client(CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, TOKEN_SECRET)
    return state


@pytest.fixture
def x(ca: TestCA, fake: FakeX) -> Iterator[FakeXThread]:
    context = ca.server_context(["api.x.com", "api.twitter.com"])
    with FakeXThread(state=fake, ssl_context=context) as thread:
        yield thread


def signed_headers(
    method: str,
    url: str,
    body: str | None = None,
    content_type: str = "application/json",
    *,
    token: str = ACCESS_TOKEN,
    token_secret: str = TOKEN_SECRET,
) -> dict[str, str]:
    client = OAuth1Client(
        CONSUMER_KEY,
        client_secret=CONSUMER_SECRET,
        resource_owner_key=token,
        resource_owner_secret=token_secret,
    )
    headers = {"Content-Type": content_type}
    _, signed, _ = client.sign(url, method, body, headers)
    return signed


def send(
    x: FakeXThread,
    ca: TestCA,
    method: str,
    path_and_query: str,
    headers: dict[str, str],
    content: str | bytes = b"",
    host: str = "api.x.com",
) -> httpx.Response:
    """Send to the fake on 127.0.0.1 as if to https://{host}, the TLS name checked too."""
    with httpx.Client(verify=ca.client_context()) as client:
        return client.request(
            method,
            f"https://127.0.0.1:{x.port}{path_and_query}",
            headers={**headers, "Host": host},
            content=content,
            extensions={"sni_hostname": host},
        )


DM_BODY = '{"text":"hello through the forward proxy"}'


def test_signature_for_the_original_https_url_passes(x: FakeXThread, ca: TestCA) -> None:
    assert x.url.startswith("https://")
    headers = signed_headers("POST", DM_URL, DM_BODY)
    assert headers["Authorization"].startswith("OAuth ")

    response = send(x, ca, "POST", DM_PATH, headers, DM_BODY)

    assert response.status_code == 201, response.text
    assert x.state.oauth1_checks == [(DM_PATH, True)]
    assert [(m.sender_id, m.text) for m in x.state.sent] == [
        ("42", "hello through the forward proxy")
    ]


def test_query_parameters_are_part_of_the_signature(x: FakeXThread, ca: TestCA) -> None:
    url = "https://api.x.com/2/users/me?user.fields=id%2Cusername"
    ok = send(x, ca, "GET", "/2/users/me?user.fields=id%2Cusername", signed_headers("GET", url))
    tampered = send(x, ca, "GET", "/2/users/me?user.fields=id", signed_headers("GET", url))

    assert ok.status_code == 200, ok.text
    assert tampered.status_code == 401
    assert tampered.json() == UNAUTHORIZED
    assert x.state.oauth1_checks == [("/2/users/me", True), ("/2/users/me", False)]


def test_tampered_path_is_refused_like_x(x: FakeXThread, ca: TestCA) -> None:
    headers = signed_headers("POST", DM_URL, DM_BODY)

    response = send(x, ca, "POST", "/2/dm_conversations/with/124/messages", headers, DM_BODY)

    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json() == UNAUTHORIZED
    assert x.state.oauth1_checks == [("/2/dm_conversations/with/124/messages", False)]
    assert x.state.sent == []


def test_form_body_parameters_are_part_of_the_signature(x: FakeXThread, ca: TestCA) -> None:
    form = "text=hello&recipient_id=123"
    content_type = "application/x-www-form-urlencoded"
    headers = signed_headers("POST", "https://api.x.com/_test/echo", form, content_type)

    ok = send(x, ca, "POST", "/_test/echo", headers, form)
    tampered = send(x, ca, "POST", "/_test/echo", headers, "text=bye&recipient_id=123")

    assert ok.status_code == 200, ok.text
    assert ok.json()["body_length"] == len(form)
    assert tampered.status_code == 401
    assert x.state.oauth1_checks == [("/_test/echo", True), ("/_test/echo", False)]


@pytest.mark.parametrize(
    "signed_url",
    [
        "http://api.x.com" + DM_PATH,  # the wrong scheme
        "https://api.twitter.com" + DM_PATH,  # another host
        "https://dmgate:8080/x" + DM_PATH,  # the reverse-proxy URL
        "https://api.x.com:8443" + DM_PATH,  # a port the client did not use
    ],
)
def test_signature_for_another_url_is_refused(x: FakeXThread, ca: TestCA, signed_url: str) -> None:
    headers = signed_headers("POST", signed_url, DM_BODY)

    response = send(x, ca, "POST", DM_PATH, headers, DM_BODY)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert x.state.oauth1_checks == [(DM_PATH, False)]


def test_wrong_secrets_and_unknown_token_are_refused(x: FakeXThread, ca: TestCA) -> None:
    bad_secret = signed_headers("POST", DM_URL, DM_BODY, token_secret="not-the-secret")
    unknown = signed_headers("POST", DM_URL, DM_BODY, token="43-unknown")

    assert send(x, ca, "POST", DM_PATH, bad_secret, DM_BODY).status_code == 401
    assert send(x, ca, "POST", DM_PATH, unknown, DM_BODY).status_code == 401
    assert x.state.oauth1_checks == [(DM_PATH, False), (DM_PATH, False)]


def test_unregistered_consumer_is_not_checked(x: FakeXThread, ca: TestCA) -> None:
    # As before this feature: any signature passes and the token names the user.
    x.state.oauth1_consumers.clear()
    headers = signed_headers("POST", "https://dmgate:8080/x" + DM_PATH, DM_BODY)

    response = send(x, ca, "POST", DM_PATH, headers, DM_BODY)

    assert response.status_code == 201, response.text
    assert x.state.oauth1_checks == []
    assert x.state.sent[0].sender_id == "42"


def test_scheme_follows_the_connection(ca: TestCA, fake: FakeX) -> None:
    """Over plain HTTP the fake expects an http:// signature, so https:// ones fail."""
    with FakeAppThread(fake) as plain:
        assert plain.url.startswith("http://")
        url = f"{plain.url}{DM_PATH}"
        for signed_url, status in (("http://api.x.com" + DM_PATH, 201), (DM_URL, 401)):
            headers = {**signed_headers("POST", signed_url, DM_BODY), "Host": "api.x.com"}
            assert httpx.post(url, headers=headers, content=DM_BODY).status_code == status
    assert fake.oauth1_checks == [(DM_PATH, True), (DM_PATH, False)]


def _handshake(port: int, context: ssl.SSLContext, server_hostname: str) -> dict[str, Any]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        return tls.getpeercert() or {}


def test_certificate_is_valid_for_the_requested_names_only(x: FakeXThread, ca: TestCA) -> None:
    cert = _handshake(x.port, ca.client_context(), "api.x.com")
    assert ("DNS", "api.x.com") in cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]

    with pytest.raises(ssl.SSLCertVerificationError, match=r"api\.linkedin\.com"):
        _handshake(x.port, ca.client_context(), "api.linkedin.com")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        send(x, ca, "GET", "/2/users/me", {}, host="upload.x.com")
    # A client that trusts only the system store does not accept the test CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(x.port, ssl.create_default_context(), "api.x.com")


def test_tweepy_client_end_to_end(
    x: FakeXThread, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tweepy itself, its api.twitter.com:443 resolved to the fake, its signature checked."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("api.x.com", "api.twitter.com") and int(port) == 443:
            return real_getaddrinfo("127.0.0.1", x.port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    client = tweepy.Client(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        access_token=ACCESS_TOKEN,
        access_token_secret=TOKEN_SECRET,
    )
    client.session.verify = str(ca.ca_path)
    client.session.trust_env = False  # no HTTPS_PROXY from the environment here

    response = client.create_direct_message(participant_id=123, text="hi from tweepy")

    assert isinstance(response, tweepy.Response)
    assert response.data["dm_conversation_id"] == "42-123"
    assert x.state.oauth1_checks == [(DM_PATH, True)]
    assert x.state.requests[-1].header("Host") == "api.twitter.com"

    client.access_token_secret = "wrong"
    with pytest.raises(tweepy.Unauthorized):
        client.create_direct_message(participant_id=123, text="refused")
    assert x.state.oauth1_checks[-1] == (DM_PATH, False)


def test_requests_oauth1_signature_as_tweepy_makes_it(x: FakeXThread, ca: TestCA) -> None:
    """The auth object tweepy's v1.1 API hands to requests signs what the fake verifies."""
    auth = tweepy.OAuth1UserHandler(CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, TOKEN_SECRET)
    prepared = requests.Request(
        "GET", "https://api.x.com/1.1/followers/ids.json?count=5", auth=auth.apply_auth()
    ).prepare()
    authorization = prepared.headers["Authorization"]
    if isinstance(authorization, bytes):
        authorization = authorization.decode()

    response = send(
        x, ca, "GET", "/1.1/followers/ids.json?count=5", {"Authorization": authorization}
    )

    assert response.status_code == 200, response.text
    assert x.state.oauth1_checks == [("/1.1/followers/ids.json", True)]
