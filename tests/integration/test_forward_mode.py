"""Forward mode end to end: unmodified clients set HTTPS_PROXY and trust dmgate's CA.

The upstream is a local TLS fake of X holding a certificate for api.x.com and
api.twitter.com (from a test CA that only dmgate trusts, through the route's `ca_bundle`).
It checks OAuth 1.0a signatures with oauthlib against the URL the client signed, so a DM
it accepts proves the signature survived dmgate — forwarded, and released after approval.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from cryptography import x509
from oauthlib.oauth1 import Client as OAuth1Client

from tests.fakes.tls import TestCA
from tests.fakes.x_upstream import FakeXThread
from tests.support import DMGate, wait_until

CONSUMER_KEY, CONSUMER_SECRET = "consumer-key", "consumer-secret"
ACCOUNT = "111"
ACCESS_TOKEN, TOKEN_SECRET = f"{ACCOUNT}-access-token", "token-secret"
BEARER = "user-token-of-111"  # OAuth 2.0 user context, for clients that cannot sign
PITCH = (
    "Hey friend, thanks for the follow! I built Rocketly for founders like you. "
    "Join 5,000 others here: https://rocketly.example/{n}"
)
POLICY = """
mode: enforce
policies:
  follow_timing:
    action: block
    window: 1h
  template_reuse:
    action: hold
    min_recipients: 3
    window: 24h
"""


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "upstream-ca")


@pytest.fixture
def tls_x(test_ca: TestCA) -> Iterator[FakeXThread]:
    context = test_ca.server_context(["api.x.com", "api.twitter.com"])
    with FakeXThread(ssl_context=context) as fake:
        fake.state.add_oauth1_client(CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, TOKEN_SECRET)
        fake.state.add_user(ACCOUNT, token=BEARER)
        yield fake


def routes(upstream: str, ca_bundle: Path) -> str:
    return json.dumps(
        {
            "x": {
                "upstream": upstream,
                "platform": "x",
                "hosts": ["api.x.com", "api.twitter.com"],
                "ca_bundle": str(ca_bundle),
            }
        }
    )


@pytest.fixture
def start_gate(
    dmgate_factory: Callable[..., DMGate], tls_x: FakeXThread, test_ca: TestCA
) -> Callable[..., DMGate]:
    def start(env: dict[str, str] | None = None, policy_yaml: str = POLICY) -> DMGate:
        full = {"DMGATE_ROUTES": routes(tls_x.url, test_ca.ca_path), **(env or {})}
        return dmgate_factory(env=full, policy_yaml=policy_yaml)

    return start


@pytest.fixture
def gate(start_gate: Callable[..., DMGate]) -> DMGate:
    return start_gate()


def dmgate_ca(gate: DMGate) -> Path:
    return gate.tmp / "dmgate-ca" / "ca.pem"


def trusting(gate: DMGate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dmgate_ca(gate)))


# --- raw forward-mode connections -------------------------------------------------------


def connect(gate: DMGate, authority: str, *headers: str, timeout: float = 10) -> socket.socket:
    """A socket after dmgate answered `CONNECT authority` with 200."""
    sock, status, _ = connect_raw(gate, authority, *headers, timeout=timeout)
    assert status == 200, status
    return sock


def connect_raw(
    gate: DMGate, authority: str, *headers: str, timeout: float = 10
) -> tuple[socket.socket, int, bytes]:
    sock = socket.create_connection(("127.0.0.1", gate.port), timeout=timeout)
    head = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", *headers]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    rest = answer.partition(b"\r\n\r\n")[2]
    return sock, status, rest


def read_to_close(sock: socket.socket | ssl.SSLSocket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return out


def https_request(
    tls: ssl.SSLSocket, method: str, path: str, host: str, *headers: str, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    raw = read_to_close(tls)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, payload


def oauth1_headers(method: str, url: str, body: bytes = b"", content_type: str = "") -> dict:
    client = OAuth1Client(
        CONSUMER_KEY,
        client_secret=CONSUMER_SECRET,
        resource_owner_key=ACCESS_TOKEN,
        resource_owner_secret=TOKEN_SECRET,
    )
    headers = {"Content-Type": content_type} if content_type else {}
    _, signed, _ = client.sign(url, method, body or None, headers)
    return signed


def report_follow(gate: DMGate, follower: str) -> None:
    with gate.review() as review:
        r = review.post(
            "/api/v1/follow-events",
            json={"platform": "x", "account": ACCOUNT, "follower": follower},
        )
    assert r.status_code in (200, 201, 202), r.text


# --- tweepy, unmodified: two environment variables --------------------------------------

TWEEPY_SCRIPT = """
import json, sys
import requests, tweepy

client = tweepy.Client(
    consumer_key=sys.argv[1], consumer_secret=sys.argv[2],
    access_token=sys.argv[3], access_token_secret=sys.argv[4],
    return_type=requests.Response,
)
results = []
for recipient, text in json.loads(sys.argv[5]):
    try:
        r = client.create_direct_message(participant_id=recipient, text=text)
    except tweepy.HTTPException as exc:
        r = exc.response
    results.append({
        "status": r.status_code,
        "decision": r.headers.get("DMGate-Decision"),
        "hold_id": r.headers.get("DMGate-Hold-Id"),
        "body": r.json(),
    })
print(json.dumps(results))
"""


def run_tweepy(env: dict[str, str], messages: list[tuple[str, str]]) -> list[dict[str, Any]]:
    clean = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            TWEEPY_SCRIPT,
            CONSUMER_KEY,
            CONSUMER_SECRET,
            ACCESS_TOKEN,
            TOKEN_SECRET,
            json.dumps(messages),
        ],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_tweepy_oauth1_dms_are_forwarded_held_and_blocked_through_https_proxy(gate, tls_x):
    report_follow(gate, "204")  # followed a moment ago: a DM now is an auto-DM
    env = {"HTTPS_PROXY": gate.url, "REQUESTS_CA_BUNDLE": str(dmgate_ca(gate))}
    results = run_tweepy(
        env, [("201", PITCH.format(n=1)), ("202", PITCH.format(n=2)), ("203", PITCH.format(n=3))]
    )
    results += run_tweepy(env, [("204", "Hi! Thanks so much for following me back today.")])
    forwarded, forwarded_too, held, blocked = results

    for r in (forwarded, forwarded_too):
        assert (r["status"], r["decision"]) == (201, "allow")
        assert r["body"]["data"]["dm_event_id"]
    assert (held["status"], held["decision"]) == (201, "hold")  # tweepy sees a sent DM
    assert held["body"]["data"]["dm_conversation_id"]
    assert (blocked["status"], blocked["decision"]) == (403, "block")
    assert "follow_timing" in blocked["body"]["detail"]

    fake = tls_x.state
    assert [m.recipient_id() for m in fake.sent] == ["201", "202"]
    assert [ok for _, ok in fake.oauth1_checks] == [True, True]
    sent_hosts = {r.header("Host") for r in fake.requests}
    assert sent_hosts == {"api.twitter.com"}  # tweepy's host, as the tool addressed it

    with gate.review() as review:
        approved = review.post(f"/api/v1/holds/{held['hold_id']}/approve", json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "sent"
    assert [m.recipient_id() for m in fake.sent] == ["201", "202", "203"]
    assert [ok for _, ok in fake.oauth1_checks] == [True, True, True]  # signature still good
    assert fake.requests[-1].header("Host") == "api.twitter.com"

    decisions = [r for r in gate.log_records() if r.get("event") == "dm_decision"]
    assert [d["action"] for d in decisions] == ["allow", "allow", "hold", "block"]
    assert {d["account"] for d in decisions} == {ACCOUNT}
    assert gate.metric("dmgate_requests_total", route="x", kind="dm") == 4
    assert gate.metric("dmgate_proxy_connects_total", outcome="intercepted") >= 2


def test_tool_that_does_not_trust_the_ca_fails_closed_and_is_counted(gate, tls_x):
    env = {"HTTPS_PROXY": gate.url}  # the system trust store knows nothing of dmgate's CA
    proc = subprocess.run(
        [sys.executable, "-c", "import requests; requests.get('https://api.x.com/2/users/me')"],
        env={**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in proc.stderr
    assert not tls_x.state.requests
    wait_until(lambda: gate.metric("dmgate_proxy_connects_total", outcome="tls_failed") >= 1)


# --- curl ---------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True, timeout=60
    )


def test_curl_sends_a_dm_through_the_proxy(gate, tls_x, tmp_path):
    headers = tmp_path / "headers.txt"
    out = curl(
        "--proxy", gate.url, "--cacert", str(dmgate_ca(gate)), "-D", str(headers),
        "-X", "POST", "-H", f"Authorization: Bearer {BEARER}",
        "-H", "Content-Type: application/json",
        "--data", json.dumps({"text": "Good to meet you at the meetup yesterday!"}),
        "https://api.x.com/2/dm_conversations/with/301/messages",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # curl writes the proxy's CONNECT answer first, then X's.
    answers = [a for a in headers.read_text().split("\n\n") if a.strip()]
    assert answers[0].startswith("HTTP/1.1 200 Connection Established")
    assert answers[-1].startswith("HTTP/1.1 201 ")
    assert "dmgate-decision: allow" in answers[-1].lower()
    assert json.loads(out.stdout)["data"]["dm_event_id"]
    assert [m.recipient_id() for m in tls_x.state.sent] == ["301"]
    assert tls_x.state.requests[-1].header("Host") == "api.x.com"


def test_curl_with_the_combined_bundle_reaches_intercepted_hosts(gate, tls_x, tmp_path):
    bundle = tmp_path / "bundle.pem"
    env = {**gate.env, "DMGATE_DATABASE_URL": gate.env["DMGATE_DATABASE_URL"]}
    export = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "ca", "export", "--bundle", "-o", str(bundle)],
        env=env, cwd=gate.tmp, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    text = bundle.read_text()
    assert text.count("BEGIN CERTIFICATE") > 10  # the system's CAs …
    assert dmgate_ca(gate).read_text().strip() in text  # … and dmgate's
    out = curl(
        "--proxy", gate.url, "--cacert", str(bundle), "-H", f"Authorization: Bearer {BEARER}",
        "https://api.x.com/2/users/me",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"]["id"] == ACCOUNT


# --- aiohttp, honouring HTTPS_PROXY (trust_env) ----------------------------------------


def test_aiohttp_client_sends_signed_dms_through_the_proxy(gate, tls_x, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", gate.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def send(recipient: str, text: str) -> tuple[int, str | None, dict[str, Any]]:
        url = "https://api.x.com/1.1/direct_messages/events/new.json"
        body = json.dumps(
            {
                "event": {
                    "type": "message_create",
                    "message_create": {
                        "target": {"recipient_id": recipient},
                        "message_data": {"text": text},
                    },
                }
            }
        ).encode()
        # A JSON body is not part of an OAuth 1.0a signature; the URL is.
        headers = oauth1_headers("POST", url)
        headers["Content-Type"] = "application/json"
        async with aiohttp.ClientSession(trust_env=True) as session:
            async with session.post(url, data=body, headers=headers, ssl=trusting(gate)) as r:
                return r.status, r.headers.get("DMGate-Decision"), await r.json()

    results = [asyncio.run(send(str(400 + i), PITCH.format(n=i))) for i in range(3)]
    assert [(s, d) for s, d, _ in results] == [(200, "allow"), (200, "allow"), (200, "hold")]
    assert [ok for _, ok in tls_x.state.oauth1_checks] == [True, True]
    assert results[0][2]["event"]["message_create"]["target"]["recipient_id"] == "400"


# --- what is intercepted, tunnelled or refused -----------------------------------------


@pytest.mark.parametrize(
    "authority, detail",
    [
        ("example.com:443", "DMGATE_TUNNEL_HOSTS"),
        ("127.0.0.1:443", "IP address"),
        ("[::1]:443", "IP address"),
        ("api.x.com:8443", "port 443 only"),
        ("api.x.com", "host:port"),
    ],
)
def test_connect_elsewhere_is_refused(gate, authority, detail):
    sock, status, rest = connect_raw(gate, authority)
    body = rest + read_to_close(sock)
    sock.close()
    assert status == 403
    error = json.loads(body)
    assert error["source"] == "dmgate" and detail in error["detail"]
    assert gate.metric("dmgate_proxy_connects_total", outcome="refused") >= 1


def test_allow_listed_host_is_tunnelled_blindly(start_gate, test_ca):
    other = TestCA(test_ca.dir.parent / "other-ca")
    with FakeXThread(ssl_context=other.server_context(["localhost"])) as far:
        refused = start_gate(env={"DMGATE_TUNNEL_HOSTS": f"localhost:{far.port}"})
        sock, status, _ = connect_raw(refused, f"localhost:{far.port}")
        sock.close()
        assert status == 403  # localhost is a loopback address: not without the opt-in

        gate = start_gate(
            env={"DMGATE_TUNNEL_HOSTS": f"localhost:{far.port}", "DMGATE_TUNNEL_PRIVATE": "true"}
        )
        sock = connect(gate, f"localhost:{far.port}")
        # The client sees the far end's own certificate: dmgate did not intercept.
        with other.client_context().wrap_socket(sock, server_hostname="localhost") as tls:
            status, _, body = https_request(tls, "GET", "/_test/echo", "localhost")
        assert status == 200 and json.loads(body)["method"] == "GET"
        assert gate.metric("dmgate_proxy_connects_total", outcome="tunnelled") == 1
        assert gate.metric("dmgate_requests_total", route="x", kind="passthrough") == 0


def test_proxy_authentication(start_gate, tls_x):
    gate = start_gate(env={"DMGATE_PROXY_AUTH": "bot:s3cret-pass"})
    sock, status, rest = connect_raw(gate, "api.x.com:443")
    answer = rest + read_to_close(sock)
    sock.close()
    assert status == 407 and json.loads(answer)["error"] == "proxy_auth_required"

    wrong = "Basic " + base64.b64encode(b"bot:wrong").decode()
    sock, status, _ = connect_raw(gate, "api.x.com:443", f"Proxy-Authorization: {wrong}")
    sock.close()
    assert status == 407

    out = curl(
        "--proxy", gate.url, "--proxy-user", "bot:s3cret-pass", "--cacert", str(dmgate_ca(gate)),
        "-H", f"Authorization: Bearer {BEARER}", "https://api.x.com/2/users/me",
    )  # fmt: skip
    assert out.returncode == 0 and json.loads(out.stdout)["data"]["id"] == ACCOUNT
    # Plain-HTTP proxy requests need the credentials too.
    r = httpx.get("http://api.x.com/2/users/me", proxy=gate.url)
    assert r.status_code == 407 and "Basic" in r.headers["Proxy-Authenticate"]
    assert "s3cret-pass" not in gate.logs()


def test_sni_must_match_the_connect_host(gate, tls_x):
    lax = trusting(gate)
    lax.check_hostname = False  # so that only dmgate's SNI check can fail the handshake
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with lax.wrap_socket(connect(gate, "api.x.com:443"), server_hostname="api.twitter.com"):
            pass
    with lax.wrap_socket(connect(gate, "api.x.com:443"), server_hostname="api.x.com") as tls:
        assert tls.version() is not None
    assert not tls_x.state.requests


def test_a_request_for_another_host_inside_a_tunnel_is_misdirected(gate, tls_x):
    sock = connect(gate, "api.x.com:443")
    with trusting(gate).wrap_socket(sock, server_hostname="api.x.com") as tls:
        status, _, body = https_request(tls, "GET", "/2/users/me", "api.twitter.com")
    assert status == 421 and json.loads(body)["source"] == "dmgate"
    assert not tls_x.state.requests


def test_alpn_negotiates_http_1_1(gate):
    context = trusting(gate)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with context.wrap_socket(connect(gate, "api.x.com:443"), server_hostname="api.x.com") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_leaf_certificate_is_issued_by_dmgates_constrained_ca(gate):
    with trusting(gate).wrap_socket(
        connect(gate, "api.x.com:443"), server_hostname="api.x.com"
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    ca = x509.load_pem_x509_certificate(dmgate_ca(gate).read_bytes())
    assert leaf.issuer == ca.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.x.com"]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 31
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    assert {n.value for n in constraints.permitted_subtrees} == {"api.x.com", "api.twitter.com"}
    key = gate.tmp / "dmgate-ca" / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert "PRIVATE KEY" not in gate.logs()


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/api/v1/holds", "/x/2/users/me"])
def test_paths_inside_a_tunnel_belong_to_the_platform_not_to_dmgate(gate, tls_x, path):
    with trusting(gate).wrap_socket(
        connect(gate, "api.x.com:443"), server_hostname="api.x.com"
    ) as tls:
        status, _, body = https_request(tls, "GET", path, "api.x.com")
    assert status == 404 and "source" not in json.loads(body)  # X's own 404
    assert tls_x.state.requests[-1].raw_path == path


def test_plain_http_proxy_requests_to_a_route_host_are_judged_and_forwarded(gate, tls_x):
    r = httpx.post(
        "http://api.x.com/2/dm_conversations/with/501/messages",
        json={"text": "Lovely chatting with you about the conference talk."},
        headers={"Authorization": f"Bearer {BEARER}"},
        proxy=gate.url,
    )
    assert r.status_code == 201 and r.headers["DMGate-Decision"] == "allow"
    assert tls_x.state.requests[-1].header("Host") == "api.x.com"


def test_early_data_and_slow_heads_are_refused(start_gate):
    gate = start_gate(env={"DMGATE_CLIENT_HANDSHAKE_TIMEOUT": "1s"})
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(b"CONNECT api.x.com:443 HTTP/1.1\r\nHost: api.x.com:443\r\n\r\n\x16\x03\x01")
        assert read_to_close(sock).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(b"CONNECT api.x.com:443 HTTP/1.1\r\n")  # … and nothing more
        assert read_to_close(sock).startswith(b"HTTP/1.1 408 ")
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(b"CONNECT api.x.com:443 HTTP/1.1\r\nX-Pad: " + b"a" * 20000)
        assert read_to_close(sock).startswith(b"HTTP/1.1 431 ")
    assert httpx.get(gate.url + "/healthz").status_code == 200


# --- a client that gives up mid-DM and retries -----------------------------------------


def test_a_retry_after_a_lost_answer_does_not_send_the_dm_twice(gate, tls_x):
    tls_x.state.delay_seconds = 1.0
    url = "https://api.x.com/2/dm_conversations/with/601/messages"
    text = "Following up on our call: here are the slides I promised you."
    with httpx.Client(proxy=gate.url, verify=trusting(gate), timeout=0.3) as impatient:
        with pytest.raises(httpx.TimeoutException):
            impatient.post(url, json={"text": text}, headers={"Authorization": f"Bearer {BEARER}"})
    # The DM reached X even though the tool stopped waiting.
    wait_until(lambda: len(tls_x.state.sent) == 1, what="the first send upstream")
    wait_until(
        lambda: any(r.get("event") == "dm_answer_undelivered" for r in gate.log_records()),
        what="dmgate to notice the tool went away",
    )
    tls_x.state.delay_seconds = 0
    with httpx.Client(proxy=gate.url, verify=trusting(gate), timeout=30) as patient:
        retry = patient.post(
            url, json={"text": text}, headers={"Authorization": f"Bearer {BEARER}"}
        )
    assert retry.status_code == 201 and retry.headers["DMGate-Decision"] == "allow"
    assert retry.json()["data"]["dm_event_id"] == tls_x.state.sent[0].id  # the first send's
    assert len(tls_x.state.sent) == 1

    # Once the tool has its answer, the same text again is a new DM.
    with httpx.Client(proxy=gate.url, verify=trusting(gate), timeout=30) as client:
        again = client.post(url, json={"text": text}, headers={"Authorization": f"Bearer {BEARER}"})
    assert again.status_code == 201 and len(tls_x.state.sent) == 2
