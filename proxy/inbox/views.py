"""A hold as the review API and the inbox show it: the `Hold` of the review API plus its
campaign (`template_id`), what dmgate saw of its recipients (`recipient_profiles`) and its
history (`history`: who held, decided and sent it, with edits and reasons)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from proxy.store import Store
from proxy.store.holds import EXPIRED, PENDING, REJECTED, SEND_FAILED, SENT

APPROVED, EDITED, HELD = "approved", "edited_and_approved", "held"
# Profile details the pages use that the API's RecipientProfile does not carry.
_PAGE_ONLY = ("names", "follows", "wrote_at")


def _ts(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def history(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of the hold, oldest first. One decision per hold (state changes are
    conditional on `pending`), so the row itself is the record."""
    held_because = "; ".join(p.get("reason", "") for p in row["policies"] if p.get("reason"))
    steps: list[dict[str, Any]] = [
        {"at": _ts(row["created_at"]), "by": "dmgate", "action": HELD, "reason": held_because}
    ]
    status, at, by = row["status"], _ts(row["decided_at"]), row["decided_by"]
    if status == REJECTED:
        steps.append(
            {"at": at, "by": by, "action": "rejected", "reason": row["reason"], "note": row["note"]}
        )
    elif status in (SENT, SEND_FAILED):
        sent = row["sent_text"]
        step: dict[str, Any] = {"at": at, "by": by, "action": APPROVED, "note": row["note"]}
        if sent is not None and sent != row["text"]:
            step |= {"action": EDITED, "text_before": row["text"], "text_after": sent}
        steps.append(step)
        steps.append(
            {
                "at": at,
                "by": "dmgate",
                "action": "sent" if status == SENT else "send_failed",
                "reason": None if status == SENT else row["upstream_body"],
            }
        )
    elif status == EXPIRED:
        steps.append({"at": at, "by": by or "dmgate", "action": "expired"})
    elif status == PENDING and row.get("claimed_at") is not None:
        steps.append({"at": _ts(row["claimed_at"]), "by": by, "action": "releasing"})
    return steps


async def detailed(store: Store, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Review API `Hold`s with their profiles and history (one query per table)."""
    from proxy.review import hold_view  # the review API imports this module

    rows = list(rows)
    profiles = await store.profiles.for_holds(rows)
    return [
        {
            **hold_view(r),
            "template_id": r.get("template_id"),
            "recipient_profiles": [
                {k: v for k, v in p.items() if k not in _PAGE_ONLY}
                for p in profiles.get(r["id"], [])
            ],
            "history": history(r),
        }
        for r in rows
    ]


def decision_record(row: dict[str, Any]) -> dict[str, Any]:
    """One line of `GET /api/v1/decisions`: a reviewer's (or expiry's) decision."""
    steps = history(row)
    decision = next((s for s in steps[1:] if s["action"] != "sent"), steps[-1])
    return {
        "hold_id": row["id"],
        "at": _ts(row["decided_at"]),
        "by": row["decided_by"],
        "action": decision["action"],
        "status": row["status"],
        "reason": row["reason"],
        "note": row["note"],
        "text_before": decision.get("text_before"),
        "text_after": decision.get("text_after"),
        "platform": row["platform"],
        "account": row["account"],
        "recipients": row["recipients"],
        "template_id": row.get("template_id"),
        "policies": [p.get("policy") for p in row["policies"]],
        "held_at": _ts(row["created_at"]),
    }
