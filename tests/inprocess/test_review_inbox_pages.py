"""The review inbox's pages over plain HTTP: sign-in, the session cookie's flags and
lifetime, CSRF, security headers, escaping and the inbox's cursor pages and filters.
(What needs a browser — scripts, keyboard, live updates, accessibility — is in
tests/browser.)"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.inprocess.conftest import Gate
from tests.inprocess.dm import learn_identity, send_dm
from tests.integration.dm_helpers import SENDER
from tests.support import REVIEW_TOKENS

POLICY = """
mode: enforce
policies:
  follow_timing:
    action: hold
    window: 1h
"""


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def sign_in(gate: Gate, who: str = "alice") -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=gate.url, trust_env=False)
    page = await client.get("/review/signin")
    r = await client.post(
        "/review/signin", data={"csrf": _csrf(page.text), "token": REVIEW_TOKENS[who]}
    )
    assert r.status_code == 303 and r.headers["Location"] == "/review/inbox", r.text
    return client


async def hold(gate: Gate, follower: str, text: str) -> str:
    await gate.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": follower}
    )
    r = await send_dm(gate.client, follower, text)
    assert r.headers["DMGate-Decision"] == "hold", r.text
    return r.headers["DMGate-Hold-Id"]


@pytest.fixture
async def gate(gate_factory, fake_x) -> Gate:
    for i in range(400, 460):
        fake_x.state.add_user(str(i))
    gate = await gate_factory(policy_yaml=POLICY)
    await learn_identity(gate.client)
    return gate


async def test_pages_are_locked_down(gate):
    r = await gate.client.get("/review/signin")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline
    # Not signed in: every page sends you to sign in; the live feed says 401.
    r = await gate.client.get("/review/inbox")
    assert r.status_code == 303 and r.headers["Location"].startswith("/review/signin")
    assert (await gate.client.get("/review/live")).status_code == 401


async def test_session_cookie_flags_and_expiry(gate_factory):
    gate = await gate_factory(
        env={"DMGATE_PUBLIC_URL": "https://review.example", "DMGATE_REVIEW_SESSION_TTL": "3s"}
    )
    # Cookies by hand: an HTTP client keeps `Secure` ones for HTTPS (dmgate sits behind TLS).
    client = httpx.AsyncClient(base_url=gate.url, trust_env=False)
    page = await client.get("/review/signin")
    pre = page.headers["set-cookie"].split(";")[0]
    r = await client.post(
        "/review/signin",
        data={"csrf": _csrf(page.text), "token": REVIEW_TOKENS["bob"]},
        headers={"Cookie": pre},
    )
    assert r.status_code == 303, r.text
    cookie = next(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and "dmgate_review=" in v
    )
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")}
    assert {"httponly", "secure", "max-age", "path"} <= flags  # https DMGATE_PUBLIC_URL
    assert "SameSite=Strict" in cookie and "Path=/review" in cookie and "Max-Age=3" in cookie
    session = {"Cookie": cookie.split(";")[0]}
    client.cookies.clear()
    assert (await client.get("/review/inbox", headers=session)).status_code == 200
    await asyncio.sleep(3.5)  # DMGATE_REVIEW_SESSION_TTL: the signed expiry, not the browser
    assert (await client.get("/review/inbox", headers=session)).status_code == 303
    await client.aclose()


async def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(gate):
    hold_id = await hold(gate, "404", "hello there")
    client = await sign_in(gate)
    cookie = {"Cookie": f"dmgate_review={client.cookies['dmgate_review']}"}
    page = await client.get("/review/inbox")
    other = await sign_in(gate)  # the same reviewer elsewhere: a session of its own
    out = await client.post("/review/signout", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303 and out.headers["Location"] == "/review/signin"
    # A copy of the signed-out cookie (another tab, a stolen one) opens and decides nothing.
    replay = httpx.AsyncClient(base_url=gate.url, trust_env=False)
    r = await replay.get("/review/inbox", headers=cookie)
    assert r.status_code == 303 and r.headers["Location"].startswith("/review/signin")
    r = await replay.post(
        f"/review/holds/{hold_id}/reject", data={"csrf": _csrf(page.text)}, headers=cookie
    )
    assert r.status_code == 303 and r.headers["Location"].startswith("/review/signin")
    assert (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()["status"] == "pending"
    assert (await other.get("/review/inbox")).status_code == 200
    for c in (client, other, replay):
        await c.aclose()


async def test_wrong_token_and_forged_sign_in_are_refused(gate):
    client = httpx.AsyncClient(base_url=gate.url, trust_env=False)
    page = await client.get("/review/signin")
    r = await client.post("/review/signin", data={"csrf": _csrf(page.text), "token": "nope"})
    assert r.status_code == 401 and "not valid" in r.text
    fresh = httpx.AsyncClient(base_url=gate.url, trust_env=False)  # no pre-session cookie
    r = await fresh.post("/review/signin", data={"csrf": "x", "token": REVIEW_TOKENS["alice"]})
    assert r.status_code == 403
    await client.aclose()
    await fresh.aclose()


async def test_decisions_need_the_csrf_token_and_record_the_reviewer(gate):
    hold_id = await hold(gate, "401", "Thanks for the follow!")
    client = await sign_in(gate, "bob")
    r = await client.post(f"/review/holds/{hold_id}/reject", data={"reason": "x"})
    assert r.status_code == 403
    page = await client.get(f"/review/holds/{hold_id}")
    r = await client.post(
        f"/review/holds/{hold_id}/reject", data={"reason": "auto-DM", "csrf": _csrf(page.text)}
    )
    assert r.status_code == 303
    decided = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert (decided["status"], decided["decided_by"], decided["reason"]) == (
        "rejected",
        "bob",
        "auto-DM",
    )
    page = await client.get(f"/review/holds/{hold_id}")
    assert 'data-field="decided-by">bob<' in page.text
    await client.aclose()


async def test_hostile_text_is_escaped(gate):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"
    hold_id = await hold(gate, "402", evil)
    client = await sign_in(gate)
    for url in ("/review/inbox", f"/review/holds/{hold_id}"):
        html = (await client.get(url)).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    await client.aclose()


async def test_notices_are_dmgates_own_words_never_a_links_words(gate):
    """`?m=` shows a notice after an action; a link a stranger sends a reviewer (through
    the sign-in page's `next=`) must not make dmgate say other words."""
    hold_id = await hold(gate, "403", "hello there")
    client = await sign_in(gate)
    forged = "bulk-0 messages. dmgate was upgraded: re-enter your token at https://evil.example"
    for url in ("/review/inbox", f"/review/holds/{hold_id}"):
        page = await client.get(url, params={"m": forged})
        assert page.status_code == 200 and 'class="notice"' not in page.text
        page = await client.get(url, params={"m": "bulk-3"})
        assert "Done for 3 selected messages." in page.text
    await client.aclose()


async def test_inbox_pages_by_cursor_oldest_first_with_filters(gate):
    ids = [await hold(gate, str(410 + i), f"Thanks for the follow, number {i}!") for i in range(55)]
    client = await sign_in(gate)
    first = (await client.get("/review/inbox")).text
    listed = re.findall(r'data-hold-id="([0-9a-f]{32})"', first)
    assert listed == ids[:50]  # oldest first, one page
    assert "55 waiting" in first
    nxt = re.search(r'href="([^"]*cursor=[^"]*)"', first).group(1).replace("&amp;", "&")
    second = (await client.get(nxt)).text
    assert re.findall(r'data-hold-id="([0-9a-f]{32})"', second) == ids[50:]
    newest = (await client.get("/review/inbox?order=newest")).text
    assert re.findall(r'data-hold-id="([0-9a-f]{32})"', newest)[0] == ids[-1]
    none = (await client.get("/review/inbox?policy=template_reuse")).text
    assert "Nothing is waiting for review with these filters" in none
    await client.aclose()


async def test_untouched_multi_line_text_is_approved_as_it_was_held(gate, fake_x):
    text = "Hi there!\nThanks for the follow.\n\nBest, Sam"
    hold_id = await hold(gate, "403", text)
    client = await sign_in(gate)
    page = await client.get(f"/review/holds/{hold_id}")
    r = await client.post(  # what a browser sends for the untouched textarea: CRLF
        f"/review/holds/{hold_id}/approve",
        data={"csrf": _csrf(page.text), "text": text.replace("\n", "\r\n")},
    )
    assert r.status_code == 303
    decided = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert decided["status"] == "sent"
    assert decided["history"][1]["action"] == "approved"  # not an edit
    assert [m.text for m in fake_x.state.sent if "403" in m.participant_ids] == [text]
    await client.aclose()
