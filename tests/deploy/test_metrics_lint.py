"""`promtool check metrics` on a real dmgate's own /metrics, after traffic."""

from __future__ import annotations

import subprocess

from tests.deploy.tools import executable, output
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, learn_identity, send_dm


def test_dmgate_metrics_pass_promtool_lint(dmgate, fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    fake_x.state.add_user("201")
    learn_identity(dmgate.client)
    assert send_dm(dmgate.client, "201", "Hello there, nice meeting you at the meetup").is_success
    assert dmgate.client.get("/plain/_test/echo/x").status_code == 200
    text = dmgate.client.get("/metrics").text
    assert "dmgate_requests_total{" in text
    proc = subprocess.run(
        [executable("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, output(proc)
    assert proc.stdout == proc.stderr == "", output(proc)
