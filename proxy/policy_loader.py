"""Keeps the policy engine current: reload on SIGHUP and when the file changes.

A reload builds a whole new engine first and swaps it in only if the file is valid, so a
bad edit is refused and the previous policies stay in force.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from policies.config import PolicyFileError
from policies.engine import Engine
from proxy.metrics import Metrics

log = structlog.get_logger("dmgate.policies")

FILE_CHANGED = "file changed"  # a reload's reason when the watch loop saw the file change


class PolicyHolder:
    def __init__(self, path: Path, metrics: Metrics) -> None:
        self.path = path
        self._metrics = metrics
        self.engine = Engine.from_file(path)  # a bad file at start is fatal: fail loudly
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def reload(self, reason: str) -> bool:
        self._stamp = self._file_stamp()
        try:
            engine = Engine.from_file(self.path)
        except (PolicyFileError, OSError) as exc:
            self._metrics.policy_reloads.labels("failure").inc()
            log.error(
                "policy_reload_refused",
                reason=reason,
                path=str(self.path),
                error=str(exc),
                kept_version=self.engine.version,
            )
            return False
        old = self.engine.version
        if reason == FILE_CHANGED and engine.version == old:
            # The same bytes again: an editor that truncates and then writes moves the
            # stamp twice, and the first look may already have read the finished file.
            return True
        self.engine = engine
        self._metrics.policy_reloads.labels("success").inc()
        log.info(
            "policy_reloaded",
            reason=reason,
            path=str(self.path),
            version=engine.version,
            previous_version=old,
        )
        return True

    async def watch(self, interval: float) -> None:
        """Poll the file's mtime and size: works on every filesystem, ConfigMaps included."""
        while True:
            await asyncio.sleep(interval)
            if self._file_stamp() != self._stamp:
                self.reload(FILE_CHANGED)
