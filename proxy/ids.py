"""Identifiers that sort by creation time (for cursors) and reveal nothing."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """26 hex-ish chars: 48-bit milliseconds, then 80 random bits (ULID-like ordering)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
