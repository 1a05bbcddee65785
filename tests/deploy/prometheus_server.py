"""A real Prometheus on loopback, scraping given targets every second."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy.tools import executable
from tests.support import free_port, wait_until


class Prometheus:
    def __init__(self, tmp: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(p) for p in rule_files],
                    "scrape_configs": [
                        {"job_name": "dmgate", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        self.log_path = tmp / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                executable("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # The first scrape lands a few seconds after start, even at a 1s interval.
        wait_until(
            lambda: self._alive() and self.value('max(up{job="dmgate"})') == 1,
            timeout=90,
            what=f"Prometheus scraping dmgate\n{self.logs()[-3000:]}",
        )
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.logs()}")
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(self.url + path, params=params, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{path} {params}: {r.status_code} {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def finite(result: list[dict[str, Any]]) -> list[float]:
    values = [float(s["value"][1]) for s in result]
    return [v for v in values if not math.isnan(v)]
