"""The policy holder's reloads: a file rewritten with the same bytes is no new policy."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.metrics import Metrics, create_metrics
from proxy.policy_loader import FILE_CHANGED, PolicyHolder

POLICIES = "mode: enforce\npolicies:\n  template_reuse: {action: hold, min_recipients: 3}\n"


def successes(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("dmgate_policy_reloads_total", {"result": "success"})
    return value or 0.0


def test_the_same_bytes_seen_again_by_the_watch_loop_are_not_a_reload(tmp_path: Path):
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES)
    metrics = create_metrics()
    holder = PolicyHolder(path, metrics)
    engine = holder.engine
    path.write_text(POLICIES)  # an editor's save without a change: a new stamp
    os.utime(path, (1, 1))
    assert holder.reload(FILE_CHANGED)
    assert holder.engine is engine and successes(metrics) == 0
    path.write_text(POLICIES.replace("3", "4"))
    assert holder.reload(FILE_CHANGED)
    assert holder.engine is not engine and successes(metrics) == 1
    # Asked for explicitly, a reload of the same bytes is one (the operator sees it done).
    assert holder.reload("SIGHUP") and successes(metrics) == 2
