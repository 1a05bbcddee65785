"""Browser tests of the review inbox: Playwright for Python driving Debian's `chromium`
(the Playwright browser download is not available here) against a real `dmgate serve` in
front of the fake X, with axe-core (npm, `tests/browser/node_modules`) injected for
accessibility checks.

One dmgate, one fake and one browser per module (starting them is most of the cost);
each test opens its own browser context (own cookies) and makes its own holds, to
recipients no other test uses.

Screenshots land in `test-artifacts/` (look at them); with DMGATE_UPDATE_SCREENSHOTS=1 the
inbox screenshot also replaces `docs/review-inbox.png`, the README's picture.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.x_upstream import FakeXThread
from tests.integration.conftest import routes_to
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer
from tests.support import REPO, REVIEW_TOKENS, DMGate

CHROMIUM = os.environ.get("DMGATE_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "test-artifacts"
OTHER_SENDER, OTHER_TOKEN = "300", "user-token-of-300"

POLICY = """
mode: enforce
policies:
  follow_timing:
    action: hold
    window: 1h
  template_reuse:
    action: hold
    min_recipients: 3
    window: 24h
"""

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


def _require_tools() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not AXE.exists():
        missing.append(f"{AXE} (npm install --prefix tests/browser)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail("browser tests need " + ", ".join(missing))
        pytest.skip("browser tests need " + ", ".join(missing))


class Scene:
    """The running dmgate and fake X, and ways to make holds through the proxy."""

    def __init__(self, gate: DMGate, fake: FakeXThread) -> None:
        self.gate = gate
        self.fake = fake
        self.url = gate.url
        self._ids = itertools.count(1000)
        self.api = httpx.Client(
            base_url=gate.url,
            timeout=30,
            headers={"Authorization": f"Bearer {REVIEW_TOKENS['alice']}"},
        )

    def person(
        self,
        name: str,
        username: str | None = None,
        bio: str | None = None,
        location: str | None = None,
        account: str = SENDER,
        follows: bool = True,
    ) -> str:
        """A new X user; one who `follows` `account` is seen in its follower list (and
        followed "now": follow_timing holds a DM to them)."""
        uid = str(next(self._ids))
        user = self.fake.state.add_user(uid, username=username or f"u{uid}", name=name)
        if bio is not None:
            user["description"] = bio
        if location is not None:
            user["location"] = location
        if not follows:
            return uid
        self.fake.state.followers.setdefault(account, []).insert(0, uid)
        token = SENDER_TOKEN if account == SENDER else OTHER_TOKEN
        r = self.gate.client.get(f"/x/2/users/{account}/followers", headers=bearer(token))
        assert r.status_code == 200, r.text
        return uid

    def followed_now(self, uid: str, account: str = SENDER) -> None:
        r = self.api.post(
            "/api/v1/follow-events",
            json={
                "platform": "x",
                "account": account,
                "follower": uid,
                "followed_at": datetime.now(UTC).isoformat(),
            },
        )
        assert r.status_code == 201, r.text

    def dm(self, uid: str, text: str, account: str = SENDER) -> httpx.Response:
        token = SENDER_TOKEN if account == SENDER else OTHER_TOKEN
        return self.gate.client.post(
            f"/x/2/dm_conversations/with/{uid}/messages",
            json={"text": text},
            headers=bearer(token),
        )

    def hold(self, name: str, text: str, account: str = SENDER, **profile: Any) -> str:
        """A thank-you-for-following DM to a new follower: held by follow_timing."""
        uid = self.person(name, account=account, **profile)
        self.followed_now(uid, account)
        r = self.dm(uid, text, account)
        assert r.headers.get("DMGate-Decision") == "hold", r.text
        return r.headers["DMGate-Hold-Id"]

    def hold_json(self, hold_id: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/holds/{hold_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def sent_to(self, uid: str) -> list[str]:
        return [m.text for m in list(self.fake.state.sent) if uid in m.participant_ids]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    _require_tools()
    with FakeXThread() as fake:
        fake.state.add_user(SENDER, username="rocketly", name="Rocketly", token=SENDER_TOKEN)
        fake.state.add_user(OTHER_SENDER, username="growthco", name="GrowthCo", token=OTHER_TOKEN)
        home = tmp_path_factory.mktemp("dmgate")
        (home / "policies.yaml").write_text(POLICY)
        gate = DMGate(
            home,
            {
                "DMGATE_ROUTES": routes_to(fake.url),
                "DMGATE_POLICY_FILE": str(home / "policies.yaml"),
                "DMGATE_LOG_LEVEL": "info",
            },
        )
        try:
            gate.start()
            for token in (SENDER_TOKEN, OTHER_TOKEN):  # dmgate learns whose tokens they are
                assert gate.client.get("/x/2/users/me", headers=bearer(token)).status_code == 200
            yield Scene(gate, fake)
        finally:
            gate.stop()


@pytest.fixture(scope="module")
def browser(scene: Scene) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any, scene: Scene) -> Iterator[Any]:
    """`new_page()` opens a page in a fresh context (its own cookies: its own reviewer)."""
    contexts = []

    def open_page() -> Any:
        context = browser.new_context(base_url=scene.url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page: Any, who: str = "alice") -> None:
    page.goto("/review")
    page.fill("form[data-form=signin] input[name=token]", REVIEW_TOKENS[who])
    page.click("form[data-form=signin] button[type=submit]")
    page.wait_for_url(re.compile(r"^[^?#]*/review/inbox([?#].*)?$"))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if name == "inbox" and os.environ.get("DMGATE_UPDATE_SCREENSHOTS"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, REPO / "docs" / "review-inbox.png")
    return path


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is."""
    # Evaluated through the DevTools protocol: the page's CSP (script-src 'self') would
    # refuse an injected <script>.
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
