"""The `dmgate simulate --report` page in headless Chromium (Debian's `chromium` driven by
Playwright): the charts are drawn, the search filters the held/blocked list, nothing is
logged to the console, axe-core finds no serious accessibility problem, and a screenshot
is kept in tests/artifacts/ for a person to look at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

FIXTURES = REPO / "tests" / "fixtures"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Where ./scripts/test installs it for the review inbox's browser tests.
AXE = Path(
    os.environ.get("DMGATE_TEST_AXE_JS", REPO / "tests/browser/node_modules/axe-core/axe.min.js")
)

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    five = tmp / "min-recipients-5.yaml"
    default = (REPO / "policies" / "default.yaml").read_text()
    five.write_text(default.replace("min_recipients: 3 ", "min_recipients: 5 "))
    out = tmp / "report.html"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "proxy.cli", "simulate", "--report", str(out),
            "--compare", str(five),
            str(FIXTURES / "x-archive" / "direct-messages.js"),
            str(FIXTURES / "x-archive" / "direct-messages-group.js"),
            str(FIXTURES / "generic" / "history.jsonl"),
        ],
        env={**clean, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def page(report: Path) -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.problems = []  # type: ignore[attr-defined]
        pg.on("console", lambda m: m.type in ("error", "warning") and pg.problems.append(m.text))
        pg.on("pageerror", lambda e: pg.problems.append(str(e)))
        pg.on("request", lambda r: r.url.startswith("file:") or pg.problems.append(r.url))
        pg.goto(report.as_uri())
        yield pg
        browser.close()


def test_charts_are_drawn(page) -> None:
    bars = page.locator("figure[data-chart=decisions] rect[data-action]")
    assert bars.count() >= 2 * 3  # both policy files, several days
    box = bars.first.bounding_box()
    assert box is not None and box["height"] > 1 and box["width"] > 1
    held = page.locator("figure[data-chart=decisions] rect[data-action=hold]")
    assert held.count() >= 2
    follow = page.locator("figure[data-chart=follow-to-dm] rect")
    assert follow.count() == 8
    assert max(follow.nth(i).bounding_box()["height"] for i in range(8)) > 50


def test_search_filters_held_and_blocked(page) -> None:
    rows = page.locator("table[data-table=flagged] tr[data-row]")
    total = rows.count()
    assert total >= 5
    page.fill("#search", "u102")
    visible = page.locator("table[data-table=flagged] tr[data-row]:visible")
    assert visible.count() == 1
    assert "follow_timing" in visible.first.inner_text()
    assert page.inner_text("#search-count") == "1 shown"
    page.fill("#search", "TEMPLATE_REUSE")  # case-insensitive, over reasons too
    assert 0 < visible.count() < total
    page.fill("#search", "")
    assert visible.count() == total


def test_compare_is_side_by_side(page) -> None:
    assert page.locator("[data-run]").count() == 2
    changes = page.locator("table[data-table=changes] tbody tr")
    assert changes.count() >= 2  # min_recipients 3 → 5: the 3rd and 4th copies pass
    assert all(
        "hold" in changes.nth(i).locator("td").nth(2).inner_text()
        and "allow" in changes.nth(i).locator("td").nth(3).inner_text()
        for i in range(changes.count())
    )


def test_no_console_errors_and_nothing_loaded(page) -> None:
    page.reload()
    page.wait_for_load_state("load")
    assert page.problems == []


def test_screenshot_kept(page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "simulate-report-latest.png"
    page.fill("#search", "")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_axe_finds_no_serious_problems(page) -> None:
    if not AXE.is_file():
        missing = "axe-core not installed (./scripts/test installs it; or DMGATE_TEST_AXE_JS)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => await axe.run()")
    serious = [
        f"{v['id']}: {v['help']} ({len(v['nodes'])})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
