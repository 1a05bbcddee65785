"""The review API: authentication, the OpenAPI document matching the implementation,
listing and paging, and bad input."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import pytest

from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, TEMPLATE_ONLY, pitch, send_dm
from tests.support import REVIEW_TOKENS


@pytest.fixture
def gate(dmgate_factory, fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)  # a known sender: only templates hold
    return dmgate_factory(policy_yaml=TEMPLATE_ONLY)


def _holds(gate, n: int) -> list[str]:
    """n held DMs (each the 3rd+ copy of a template)."""
    ids = []
    for i in range(n + 2):
        r = send_dm(gate.client, str(500 + i), pitch(i))
        if r.headers["DMGate-Decision"] == "hold":
            ids.append(r.headers["DMGate-Hold-Id"])
    assert len(ids) == n
    return ids


@pytest.mark.parametrize(
    "path,method",
    [
        ("/api/v1/holds", "GET"),
        ("/api/v1/holds/abc", "GET"),
        ("/api/v1/holds/abc/approve", "POST"),
        ("/api/v1/holds/abc/reject", "POST"),
        ("/api/v1/follow-events", "POST"),
    ],
)
def test_every_review_route_needs_a_valid_token(gate, path, method):
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": f"Bearer {REVIEW_TOKENS['alice']}x"},
    ):
        r = gate.client.request(method, path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert r.json()["source"] == "dmgate"


def test_health_and_metrics_need_no_token(gate):
    assert gate.client.get("/healthz").json() == {"status": "alive"}
    assert gate.client.get("/readyz").status_code == 200
    text = gate.client.get("/metrics").text
    for name in (
        "dmgate_dm_decisions_total",
        "dmgate_policy_matches_total",
        "dmgate_holds_pending",
        "dmgate_holds_resolved_total",
        "dmgate_hold_review_seconds",
        "dmgate_requests_total",
        "dmgate_upstream_request_duration_seconds",
        "dmgate_policy_evaluation_duration_seconds",
        "dmgate_review_notifications_total",
        "dmgate_policy_reloads_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_listing_pages_with_a_cursor(gate):
    ids = _holds(gate, 5)
    review = gate.review()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "pending", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = review.get("/api/v1/holds", params=params).json()
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert review.get("/api/v1/holds", params={"status": "sent"}).json()["items"] == []
    assert review.get("/api/v1/holds", params={"status": "bogus"}).status_code == 400
    assert review.get("/api/v1/holds", params={"limit": "0"}).status_code == 400
    assert review.get("/api/v1/holds", params={"limit": "x"}).status_code == 400


def test_bad_review_bodies_are_refused_and_change_nothing(gate):
    (hold_id,) = _holds(gate, 1)
    review = gate.review()
    bad = [
        (
            f"/api/v1/holds/{hold_id}/approve",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        (f"/api/v1/holds/{hold_id}/approve", {"json": {"txt": "typo"}}, 400),
        (
            f"/api/v1/holds/{hold_id}/approve",
            {
                "content": b"text=hi",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            400,
        ),
        (f"/api/v1/holds/{hold_id}/reject", {"json": {"note": "no reason"}}, 422),
        (f"/api/v1/holds/{hold_id}/reject", {"json": ["reason"]}, 400),
        (f"/api/v1/holds/{hold_id}/reject", {"json": {"reason": "   "}}, 422),
        ("/api/v1/holds/nope/approve", {}, 404),
        ("/api/v1/holds/nope/reject", {"json": {"reason": "x"}}, 404),
    ]
    for path, kwargs, status in bad:
        r = review.post(path, **kwargs)
        assert r.status_code == status, (path, kwargs, r.text)
        assert r.json()["source"] == "dmgate"
    assert review.get(f"/api/v1/holds/{hold_id}").json()["status"] == "pending"


def test_openapi_document_matches_the_implementation(gate, fake_x):
    """Call every documented operation and check status and body against the document."""
    doc = gate.client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")

    def check(path: str, method: str, response: httpx.Response) -> None:
        op = doc["paths"][path][method]
        documented = op["responses"]
        assert str(response.status_code) in documented, (path, method, response.status_code)
        content = documented[str(response.status_code)]["content"]
        if "application/x-ndjson" in content:  # the decisions export: one object a line
            validator = jsonschema.Draft202012Validator(
                {**doc, **content["application/x-ndjson"]["schema"]}
            )
            lines = response.text.splitlines()
            assert lines, "the export is empty"
            for line in lines:
                validator.validate(json.loads(line))
            return
        schema = content["application/json"]["schema"]
        jsonschema.Draft202012Validator({**doc, **schema}).validate(response.json())

    hold_a, hold_b, hold_c = _holds(gate, 3)
    review = gate.review()
    calls = [
        ("/api/v1/holds", "get", lambda: review.get("/api/v1/holds")),
        ("/api/v1/holds", "get", lambda: review.get("/api/v1/holds", params={"limit": 0})),
        ("/api/v1/holds", "get", lambda: gate.client.get("/api/v1/holds")),
        ("/api/v1/holds/{id}", "get", lambda: review.get(f"/api/v1/holds/{hold_a}")),
        ("/api/v1/holds/{id}", "get", lambda: review.get("/api/v1/holds/missing")),
        (
            "/api/v1/holds/{id}/approve",
            "post",
            lambda: review.post(f"/api/v1/holds/{hold_a}/approve", json={"note": "ok"}),
        ),
        (
            "/api/v1/holds/{id}/approve",
            "post",
            lambda: review.post(f"/api/v1/holds/{hold_a}/approve"),
        ),
        (
            "/api/v1/holds/{id}/approve",
            "post",
            lambda: review.post(f"/api/v1/holds/{hold_b}/approve", json={"text": ""}),
        ),
        (
            "/api/v1/holds/{id}/reject",
            "post",
            lambda: review.post(f"/api/v1/holds/{hold_b}/reject", json={}),
        ),
        (
            "/api/v1/holds/{id}/reject",
            "post",
            lambda: review.post(f"/api/v1/holds/{hold_b}/reject", json={"reason": "pitch"}),
        ),
        (
            "/api/v1/holds/{id}/reject",
            "post",
            lambda: review.post("/api/v1/holds/missing/reject", json={"reason": "x"}),
        ),
        (
            "/api/v1/follow-events",
            "post",
            lambda: review.post(
                "/api/v1/follow-events", json={"platform": "x", "account": "1", "follower": "2"}
            ),
        ),
        (
            "/api/v1/follow-events",
            "post",
            lambda: review.post("/api/v1/follow-events", json={"platform": "x"}),
        ),
        (
            "/api/v1/templates/{id}/reject",
            "post",
            lambda: review.post("/api/v1/templates/unknown/reject", json={"reason": "spam"}),
        ),
        (
            "/api/v1/templates/{id}/reject",
            "post",
            lambda: review.post("/api/v1/templates/unknown/reject", json={}),
        ),
        ("/api/v1/decisions", "get", lambda: review.get("/api/v1/decisions")),
        (
            "/api/v1/decisions",
            "get",
            lambda: review.get("/api/v1/decisions", params={"since": "now"}),
        ),
    ]
    seen_ops = set()
    for path, method, call in calls:
        check(path, method, call())
        seen_ops.add((path, method))
    documented_ops = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert seen_ops == documented_ops, "a documented route is not exercised"
    assert hold_c  # still pending, listed


def test_generated_token_is_printed_once_and_works(tmp_path, dmgate_factory):
    gate = dmgate_factory(env={"DMGATE_REVIEW_TOKENS": ""})
    match = re.search(r"generated a review API token.*?\n\n\s+(\S+)\n", gate.logs(), re.S)
    assert match, gate.logs()
    token = match.group(1)
    r = gate.client.get("/api/v1/holds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert token not in "\n".join(line for line in gate.logs().splitlines() if line.startswith("{"))
    gate.stop()
    gate.start()
    assert gate.logs().count("generated a review API token") == 1
    r = gate.client.get("/api/v1/holds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
