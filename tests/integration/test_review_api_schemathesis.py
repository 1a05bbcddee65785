"""schemathesis against a running dmgate: the review API's answers to generated requests
(valid, invalid, unauthenticated, undeclared methods, chained through the document's
links) must match `/api/openapi.json` and never be a server error.

This runs schemathesis' engine, the one behind its CLI, with every check and every phase
but few examples, so it takes seconds. (Its pytest plugin's lazy fixture loader does not
work with this pytest.) By hand, against any running dmgate:

    st run http://127.0.0.1:8080/api/openapi.json \\
        -H "Authorization: Bearer $TOKEN" --checks all -n 30
"""

from __future__ import annotations

import schemathesis
import schemathesis.engine
from schemathesis.engine import Status, StopReason, events

from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, TEMPLATE_ONLY, pitch, send_dm
from tests.support import REVIEW_TOKENS

EXAMPLES = 30  # per operation and phase
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
}


def test_review_api_matches_its_document(dmgate_factory, fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY)
    # Pending holds for the stateful phase to list, read, approve and reject.
    held = [send_dm(gate.client, str(700 + i), pitch(i)) for i in range(8)]
    assert sum(r.headers["DMGate-Decision"] == "hold" for r in held) == 6
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {REVIEW_TOKENS['alice']}"},
            "checks": {name: {"enabled": True} for name in CHECKS},
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "seed": 1,  # the same cases every run: a failure here is reproducible
            "workers": 1,  # two shared cores; dmgate needs one
            "request-timeout": 10,
        }
    )
    schema = schemathesis.openapi.from_url(f"{gate.url}/api/openapi.json", config=config)

    failures: list[str] = []
    tested: set[str] = set()
    finished = None
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.status is not Status.SKIP and event.label:
                tested.add(event.label)
            for checks in event.recorder.checks.values():
                failures += [
                    f"{event.label} [{event.phase.name}] {c.name}: {c.failure_info.failure.title}"
                    f"\n    {c.failure_info.code_sample}"
                    for c in checks
                    if c.status is Status.FAILURE and c.failure_info is not None
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis error: {event.info.format()}")
        elif isinstance(event, events.EngineFinished):
            finished = event

    assert finished is not None and finished.stop_reason is StopReason.COMPLETED, finished
    assert not failures, "\n".join(sorted(set(failures)))
    assert tested == {
        "GET /api/v1/holds",
        "GET /api/v1/holds/{id}",
        "POST /api/v1/holds/{id}/approve",
        "POST /api/v1/holds/{id}/reject",
        "POST /api/v1/follow-events",
        "POST /api/v1/templates/{id}/reject",
        "GET /api/v1/decisions",
    }
    assert "internal_error" not in gate.logs()
