"""The fake X upstream behaves like X where the proxy's tests depend on it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.fakes` must import at collection time
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.x_upstream import (  # noqa: E402
    GZIP_BODY,
    GZIP_PLAIN,
    SCHEMAS,
    SET_COOKIES,
    FakeX,
    FakeXThread,
    pattern_bytes,
    pattern_sha256,
    start_fake_x,
)

# X's own OpenAPI document (info.version 2.167), copied into the repository from
# /work/shared/specs/ so that the conformance tests run on every clone and in CI.
SPEC_PATH = REPO_ROOT / "tests" / "fixtures" / "x-api-v2-openapi.json"
TOKEN = "user-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def x() -> AsyncIterator[tuple[FakeX, str]]:
    fake, runner, port = await start_fake_x()
    fake.add_user("900", username="acme", token=TOKEN)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kw: Any
) -> tuple[int, str, Any]:
    async with http.request(method, url, json=body, headers=kw.pop("headers", AUTH), **kw) as r:
        raw = await r.read()
        return r.status, r.headers.get("Content-Type", ""), json.loads(raw) if raw else None


# --- DM sends validated like X ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/2/dm_conversations/with/1000/messages", {"text": "hi", "extra": 1}, "$.extra"),
        ("/2/dm_conversations/with/1000/messages", {}, "needs text or attachments"),
        ("/2/dm_conversations/with/1000/messages", {"text": ""}, "at least 1"),
        ("/2/dm_conversations/with/1000/messages", {"attachments": [{"media_id": "abc"}]}, "regex"),
        ("/2/dm_conversations/with/bob/messages", {"text": "hi"}, "participant_id"),
        ("/2/dm_conversations/900-1000/messages", {"text": 5}, "string expected"),
        (
            "/2/dm_conversations",
            {"conversation_type": "Group", "participant_ids": ["1"], "message": {"text": "x"}},
            "minimum of 2",
        ),
        (
            "/2/dm_conversations",
            {"conversation_type": "Chat", "participant_ids": ["1", "2"], "message": {"text": "x"}},
            "enumeration",
        ),
    ],
)
async def test_bad_v2_dm_body_is_400_problem_json(
    x: tuple[FakeX, str], http: aiohttp.ClientSession, path: str, body: Any, needle: str
) -> None:
    fake, url = x
    status, content_type, doc = await call(http, "POST", url + path, body)
    assert status == 400
    assert content_type.startswith("application/problem+json")
    assert doc["title"] == "Invalid Request"
    assert doc["type"] == "https://api.x.com/2/problems/invalid-request"
    assert any(needle in e["message"] for e in doc["errors"]), doc
    assert fake.sent == []


async def test_malformed_json_dm_is_400(x: tuple[FakeX, str], http: aiohttp.ClientSession) -> None:
    fake, url = x
    headers = {**AUTH, "Content-Type": "application/json"}
    async with http.post(
        url + "/2/dm_conversations/with/1/messages", data=b"{", headers=headers
    ) as r:
        assert r.status == 400
    assert fake.sent == []


async def test_good_sends_answer_like_x_and_are_recorded(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    status, _, doc = await call(
        http, "POST", url + "/2/dm_conversations/with/1000/messages", {"text": "hi"}
    )
    assert status == 201
    assert doc["data"]["dm_conversation_id"] == "900-1000"
    assert doc["data"]["dm_event_id"].isdigit()
    status, _, doc = await call(
        http,
        "POST",
        url + "/2/dm_conversations",
        {
            "conversation_type": "Group",
            "participant_ids": ["1", "2"],
            "message": {"text": "group hi"},
        },
    )
    assert status == 201
    group = doc["data"]["dm_conversation_id"]
    assert fake.groups[group] == ("900", "1", "2")
    v1 = {
        "event": {
            "type": "message_create",
            "message_create": {
                "target": {"recipient_id": "1000"},
                "message_data": {"text": "v1 hi"},
            },
        }
    }
    status, _, doc = await call(http, "POST", url + "/1.1/direct_messages/events/new.json", v1)
    assert status == 200
    assert doc["event"]["message_create"]["sender_id"] == "900"
    assert [(m.text, m.api) for m in fake.sent] == [
        ("hi", "v2"),
        ("group hi", "v2"),
        ("v1 hi", "v1.1"),
    ]


async def test_unknown_or_rejected_tokens(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    fake.reject_tokens.add(TOKEN)
    status, content_type, doc = await call(http, "GET", url + "/2/users/me")
    assert (status, doc["title"]) == (401, "Unauthorized")
    assert content_type.startswith("application/problem+json")
    status, _, doc = await call(
        http, "GET", url + "/2/users/me", headers={"Authorization": "Bearer app-only"}
    )
    assert (status, doc["title"]) == (403, "Unsupported Authentication")
    oauth1 = {"Authorization": 'OAuth oauth_token="4242-abc", oauth_signature="x"'}
    status, _, doc = await call(http, "GET", url + "/2/users/me", headers=oauth1)
    assert (status, doc["data"]["id"]) == (200, "4242")


# --- reads ---------------------------------------------------------------------------------


async def test_followers_paging_walks_the_whole_list_newest_first(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    fake.followers["900"] = [str(5000 - i) for i in range(250)]
    seen: list[str] = []
    sizes: list[int] = []
    token: str | None = None
    while True:
        query = {"max_results": "100", **({"pagination_token": token} if token else {})}
        status, _, doc = await call(http, "GET", url + "/2/users/900/followers", params=query)
        assert status == 200
        seen += [u["id"] for u in doc["data"]]
        sizes.append(doc["meta"]["result_count"])
        token = doc["meta"].get("next_token")
        if token is None:
            break
        assert len(token) >= 16  # the OpenAPI document's minLength
    assert sizes == [100, 100, 50]
    assert seen == fake.followers["900"]
    status, _, doc = await call(
        http,
        "GET",
        url + "/2/users/900/followers",
        params={"pagination_token": "not-a-token-of-ours"},
    )
    assert status == 400
    status, _, doc = await call(http, "GET", url + "/2/users/901/followers")
    assert doc == {"meta": {"result_count": 0}}  # X leaves `data` out when empty


async def test_dm_lookup_returns_only_requested_fields(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    fake.add_dm("1000", "900", "hello first")
    _, _, plain = await call(http, "GET", url + "/2/dm_events")
    assert set(plain["data"][0]) == {"id", "event_type", "text"}
    _, _, rich = await call(
        http,
        "GET",
        url + "/2/dm_conversations/with/1000/dm_events",
        params={"dm_event.fields": "sender_id,created_at,dm_conversation_id"},
    )
    [event] = rich["data"]
    assert event["sender_id"] == "1000"
    assert event["dm_conversation_id"] == "900-1000"
    assert event["created_at"].endswith("Z")


# --- /_test/ fidelity endpoints ----------------------------------------------------------


async def test_echo_preserves_raw_path_repeated_query_and_headers(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    raw = "/_test/echo/a%2Fb?q=1&q=2&sp=%20x&empty"
    headers = [("X-Rep", "one"), ("X-Other", "z"), ("X-Rep", "two")]
    async with http.post(
        URL(url + raw, encoded=True),
        data=b"\x00\x01body",
        headers=headers,
        skip_auto_headers=["User-Agent"],
    ) as r:
        doc = await r.json()
    assert doc["path"] == raw
    reps = [v for k, v in doc["headers"] if k == "X-Rep"]
    assert reps == ["one", "two"]
    assert doc["body_sha256"] == hashlib.sha256(b"\x00\x01body").hexdigest()
    recorded = fake.requests[-1]
    assert recorded.raw_path == raw
    assert recorded.query_string == "q=1&q=2&sp=%20x&empty"
    assert recorded.body == b"\x00\x01body"


async def test_bytes_gzip_headers_and_status(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    _, url = x
    n = 3 * 64 * 1024 + 17
    async with http.get(url + f"/_test/bytes/{n}") as r:
        assert r.headers["Content-Length"] == str(n)
        data = await r.read()
    assert data == pattern_bytes(n)
    assert hashlib.sha256(data).hexdigest() == pattern_sha256(n)
    async with http.get(url + "/_test/gzip") as r:
        assert r.headers["Content-Encoding"] == "gzip"
        raw = await r.read()
    assert raw == GZIP_BODY and gzip.decompress(raw) == GZIP_PLAIN
    async with http.get(url + "/_test/headers") as r:
        assert tuple(r.headers.getall("Set-Cookie")) == SET_COOKIES
        assert r.headers.getall("X-Multi") == ["one", "two"]
    async with http.get(url + "/_test/status/307?location=/elsewhere", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (307, "/elsewhere")
    async with http.get(url + "/_test/status/204") as r:
        assert r.status == 204 and await r.read() == b""


async def test_upload_streams_and_is_not_buffered_in_the_record(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    payload = pattern_bytes(2 * 1024 * 1024 + 5)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    async with http.post(url + "/_test/upload", data=chunks()) as r:
        doc = await r.json()
    assert doc == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    assert fake.requests[-1].body == b""


async def test_delay_knob_makes_answers_slow(
    x: tuple[FakeX, str], http: aiohttp.ClientSession
) -> None:
    fake, url = x
    fake.delay_seconds = 0.5
    with pytest.raises(asyncio.TimeoutError):
        await call(http, "GET", url + "/2/users/me", timeout=aiohttp.ClientTimeout(total=0.1))


# --- embedding and schema fidelity ---------------------------------------------------------


def test_thread_helper_serves_synchronous_tests() -> None:
    with FakeXThread() as fake:
        fake.state.add_user("77", token="sync")
        request = urllib.request.Request(
            fake.url + "/2/users/me", headers={"Authorization": "Bearer sync"}
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["data"]["id"] == "77"
        assert fake.state.requests[-1].path == "/2/users/me"


def _resolve(node: Any, spec: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, spec) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolve(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]], spec)
    return {k: _resolve(v, spec) for k, v in node.items() if k != "description"}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_fake_enforces_the_openapi_documents_own_dm_schemas(name: str) -> None:
    spec = json.loads(SPEC_PATH.read_text())
    assert SCHEMAS[name] == _resolve(spec["components"]["schemas"][name], spec)
