"""The review inbox in a real browser against a real `dmgate serve` (see conftest.py)."""

from __future__ import annotations

import re

import httpx

from tests.browser.conftest import (
    OTHER_SENDER,
    Scene,
    axe_violations,
    screenshot,
    sign_in,
)
from tests.support import REVIEW_TOKENS

HOLD_PAGE = re.compile(r".*/review/holds/[0-9a-f]{32}(\?.*)?(#.*)?$")
INBOX_PAGE = re.compile(r"^[^?#]*/review/inbox([?#].*)?$")
THANKS = "Thanks for the follow, {name}! Rocketly helps founders ship faster: https://rocketly.example/start"


def test_sign_in_then_inbox_names_recipients_and_reasons(scene: Scene, new_page):
    page = new_page()
    page.goto("/review")
    assert page.locator("form[data-form=signin]").is_visible()
    assert axe_violations(page) == []
    page.fill("input[name=token]", "not-a-token-at-all-0123456789")
    page.click("form[data-form=signin] button[type=submit]")
    assert page.locator("[role=alert]").inner_text().startswith("That token is not valid")

    ana = scene.hold(
        "Ana Souza",
        THANKS.format(name="Ana"),
        username="anasouza",
        bio="Product designer. Tea, type and trail running.",
        location="Porto",
    )
    sign_in(page, "alice")
    row = page.locator(f'[data-hold-id="{ana}"]')
    assert row.locator("[data-field=recipient]").inner_text() == "Ana Souza (@anasouza)"
    reason = row.locator("[data-field=reason]").inner_text()
    assert re.fullmatch(r"Recipient @anasouza followed \d+s ago and has not written first", reason)
    assert "Sent right after a follow" in row.inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "dmgate_review")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert axe_violations(page) == []


def test_approve_sends_once_and_shows_who_decided(scene: Scene, new_page):
    hold_id = scene.hold("Bo Chen", THANKS.format(name="Bo"), bio="Runs a bakery")
    uid = scene.hold_json(hold_id)["recipients"][0]
    page = new_page()
    sign_in(page, "bob")
    page.goto(f"/review/holds/{hold_id}")
    assert page.locator("[data-field=bio]").inner_text() == "Runs a bakery"
    screenshot(page, "hold-detail")
    assert axe_violations(page) == []
    page.click("[data-action=approve]")
    page.wait_for_url(INBOX_PAGE)
    assert scene.sent_to(uid) == [THANKS.format(name="Bo")]
    hold = scene.hold_json(hold_id)
    assert (hold["status"], hold["decided_by"]) == ("sent", "bob")
    page.goto(f"/review/holds/{hold_id}")
    assert page.locator("[data-field=decided-by]").inner_text() == "bob"


def test_edit_and_approve_sends_the_edited_text_once(scene: Scene, new_page):
    hold_id = scene.hold("Cy Park", THANKS.format(name="Cy"), bio="Writes about compilers")
    uid = scene.hold_json(hold_id)["recipients"][0]
    page = new_page()
    sign_in(page)
    page.goto(f"/review/holds/{hold_id}")
    edited = "Hi Cy, I enjoyed your compiler posts. What are you working on these days?"
    page.fill("textarea[name=text]", edited)
    page.click("[data-action=approve]")
    page.wait_for_url(INBOX_PAGE)
    assert scene.sent_to(uid) == [edited]
    history = scene.hold_json(hold_id)["history"]
    assert history[1]["action"] == "edited_and_approved"
    assert history[1]["text_after"] == edited


def test_reject_with_a_reason(scene: Scene, new_page):
    hold_id = scene.hold("Di Ross", THANKS.format(name="Di"))
    uid = scene.hold_json(hold_id)["recipients"][0]
    page = new_page()
    sign_in(page)
    page.goto(f"/review/holds/{hold_id}")
    page.click("[data-preset='Automated thank-you for following']")
    page.fill("[name=reason]", page.input_value("[name=reason]") + ", not personal")
    page.click("[data-action=reject]")
    page.wait_for_url(INBOX_PAGE)
    hold = scene.hold_json(hold_id)
    assert hold["status"] == "rejected"
    assert hold["reason"] == "Automated thank-you for following, not personal"
    assert scene.sent_to(uid) == []


def test_reject_a_campaign_of_twelve_copies(scene: Scene, new_page):
    pitch = (
        "Hey {name}, I built Launchpad for teams like yours. Grab a demo: https://lp.example/{n}"
    )
    uids = [scene.person(f"Camp {i}", follows=False) for i in range(14)]
    held = []
    for i, uid in enumerate(uids):
        r = scene.dm(uid, pitch.format(name=f"Camp {i}", n=i))
        if r.headers["DMGate-Decision"] == "hold":
            held.append(r.headers["DMGate-Hold-Id"])
    assert len(held) == 12
    page = new_page()
    sign_in(page)
    page.goto(f"/review/holds/{held[0]}")
    assert "(12 pending copies)" in page.locator("[data-action=reject-campaign]").inner_text()
    # The parts that vary between copies are marked; the template's words are not.
    marked = page.locator("[data-field=text] mark").all_inner_texts()
    assert [m.strip() for m in marked] == ["2,", "https://lp.example/2"]
    screenshot(page, "hold-campaign")
    page.click("[data-action=reject-campaign]")
    assert page.locator("[data-field=count]").inner_text() == "12"
    page.click("[data-action=confirm-campaign]")
    page.wait_for_url(INBOX_PAGE)
    assert "Rejected 12 pending copies" in page.locator("[role=status]").inner_text()
    template = scene.hold_json(held[0])["template_id"]
    items = scene.api.get("/api/v1/holds", params={"template": template}).json()["items"]
    assert sorted(h["id"] for h in items) == sorted(held)
    assert {h["status"] for h in items} == {"rejected"}
    for i, uid in enumerate(uids[:2]):  # the two copies before the policy caught on
        assert scene.sent_to(uid) == [pitch.format(name=f"Camp {i}", n=i)]


def test_two_reviewers_on_one_hold_send_once(scene: Scene, new_page):
    hold_id = scene.hold("Ed Wu", THANKS.format(name="Ed"))
    uid = scene.hold_json(hold_id)["recipients"][0]
    alice, bob = new_page(), new_page()
    sign_in(alice, "alice")
    sign_in(bob, "bob")
    alice.goto(f"/review/holds/{hold_id}")
    bob.goto(f"/review/holds/{hold_id}")
    alice.click("[data-action=approve]")
    alice.wait_for_url(INBOX_PAGE)
    # Bob's page has not noticed yet (or has, live): either way his approve sends nothing.
    if bob.locator("[data-action=approve]").count():
        bob.click("[data-action=approve]", timeout=2000, no_wait_after=False)
    bob.wait_for_selector("[data-field=decided-by]")
    assert bob.locator("[data-field=decided-by]").inner_text() == "alice"
    assert scene.sent_to(uid) == [THANKS.format(name="Ed")]


def test_hostile_text_and_bio_render_as_text(scene: Scene, new_page):
    evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    hold_id = scene.hold("Mallory <b>M</b>", f"Hi! {evil}", bio=f"bio {evil}", username="mal")
    page = new_page()
    sign_in(page)
    row = page.locator(f'[data-hold-id="{hold_id}"]')
    assert evil in row.locator("[data-field=preview]").inner_text()
    assert "Mallory <b>M</b>" in row.locator("[data-field=recipient]").inner_text()
    page.goto(f"/review/holds/{hold_id}")
    assert page.locator("[data-field=bio]").inner_text() == f"bio {evil}"
    assert evil in page.locator("[data-field=text]").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0


def test_state_change_without_csrf_token_is_refused(scene: Scene, new_page):
    hold_id = scene.hold("Fay Lin", THANKS.format(name="Fay"))
    page = new_page()
    sign_in(page)
    # The reviewer's own cookie, but no CSRF token: what a forged cross-site form sends.
    forged = page.request.post(
        f"/review/holds/{hold_id}/approve", form={"text": "forged"}, max_redirects=0
    )
    assert forged.status == 403
    wrong = page.request.post(
        f"/review/holds/{hold_id}/reject", form={"reason": "x", "csrf": "guess"}, max_redirects=0
    )
    assert wrong.status == 403
    assert scene.hold_json(hold_id)["status"] == "pending"
    # Without a session at all: to the sign-in page, nothing changed.
    anon = httpx.post(f"{scene.url}/review/holds/{hold_id}/approve", data={"csrf": "x"})
    assert anon.status_code == 303 and "/review/signin" in anon.headers["Location"]
    assert scene.hold_json(hold_id)["status"] == "pending"


def test_keyboard_only_review_of_six_holds(scene: Scene, new_page):
    ids = [
        scene.hold(f"Key {i}", f"Thanks for following, Key {i}!", account=OTHER_SENDER)
        for i in range(6)
    ]
    page = new_page()
    sign_in(page)
    page.goto(f"/review/inbox?account={OTHER_SENDER}")
    rows = page.locator("#holds [data-hold-id]")
    assert rows.count() == 6
    # j/k move; x selects; a approves the selection (or the current hold).
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator("[data-field=selected]").inner_text() == "2 selected"
    page.keyboard.press("a")
    page.wait_for_selector("[role=status]")
    assert rows.count() == 4
    # x, then r: the selection's reason, and Enter rejects it (never approves).
    page.keyboard.press("x")
    page.keyboard.press("r")
    page.keyboard.type("Too pushy")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*m=bulk-1.*"))
    assert rows.count() == 3
    page.keyboard.press("a")  # the current (first) hold
    rows.nth(2).wait_for(state="detached")
    page.keyboard.press("r")  # reject: the hold's page, reason field focused
    page.wait_for_url(HOLD_PAGE)
    page.keyboard.type("Not personal enough")
    page.keyboard.press("Enter")
    page.wait_for_url(INBOX_PAGE)
    page.keyboard.press("e")  # edit: the text field focused
    page.wait_for_url(HOLD_PAGE)
    page.keyboard.press("Control+a")
    page.keyboard.type("Hi Key, welcome aboard. What brought you here?")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the Approve button
    page.wait_for_url(INBOX_PAGE)
    assert rows.count() == 0
    assert "Nothing is waiting for review" in page.inner_text("main")
    statuses = sorted(scene.hold_json(h)["status"] for h in ids)
    assert statuses == ["rejected", "rejected", "sent", "sent", "sent", "sent"]


def test_inbox_updates_live_without_reload(scene: Scene, new_page):
    page = new_page()
    sign_in(page)
    page.evaluate("window.__stay = 'same page'")
    hold_id = scene.hold("Gil Mora", THANKS.format(name="Gil"), username="gilmora")
    page.wait_for_selector(f'[data-hold-id="{hold_id}"]', timeout=8000)
    assert page.evaluate("window.__stay") == "same page"
    # Another reviewer decides it: it leaves this inbox, still without a reload.
    r = httpx.post(
        f"{scene.url}/api/v1/holds/{hold_id}/reject",
        json={"reason": "duplicate"},
        headers={"Authorization": f"Bearer {REVIEW_TOKENS['bob']}"},
    )
    assert r.status_code == 200
    page.wait_for_selector(f'[data-hold-id="{hold_id}"]', state="detached", timeout=8000)
    assert page.evaluate("window.__stay") == "same page"


def test_inbox_screenshot(scene: Scene, new_page):
    """The README's picture: a morning's holds."""
    for name, user, bio in [
        ("Hana Ito", "hanaito", "Climate data at a small nonprofit"),
        ("Luis Ortega", "lortega", "Indie game dev"),
    ]:
        scene.hold(name, THANKS.format(name=name.split()[0]), username=user, bio=bio)
    # The hostile test's hold stays out of the README's picture.
    for h in scene.api.get("/api/v1/holds", params={"status": "pending"}).json()["items"]:
        if "<script>" in h["text"]:
            scene.api.post(f"/api/v1/holds/{h['id']}/reject", json={"reason": "hostile"})
    page = new_page()
    sign_in(page)
    page.locator("#holds [data-hold-id]").first.wait_for()
    screenshot(page, "inbox")
