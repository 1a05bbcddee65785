"""Hold announcements as Slack incoming-webhook messages (Block Kit).

One message per group of notifications: the copies of one campaign that arrived in the
same minute, a single hold, or the reminders of one sweep. Each names who sent it (the
sending account), to whom, why it was held, the text, and links to the hold's page on the
review inbox (`DMGATE_PUBLIC_URL`). Every message is checked against Block Kit's limits
(`check_limits`) and cut to fit rather than refused by Slack.
"""

from __future__ import annotations

from typing import Any

from proxy.inbox import present

# Block Kit limits (api.slack.com/reference/block-kit/blocks, …/composition-objects).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
MAX_FALLBACK_TEXT = 4000  # `text`: Slack truncates past 40,000; notifications show ~4,000
# Holds listed one by one in a message; the rest are counted.
MAX_LISTED = 10


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """mrkdwn control characters: DM texts and names are written by strangers, and must
    not mention @channel or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str, limit: int) -> str:
    quoted = "\n".join("> " + line for line in _escape(text).splitlines() or [""])
    return _cut(quoted, limit)


def hold_link(public_url: str | None, hold_id: str) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/review/holds/{hold_id}"


def _who(hold: dict[str, Any]) -> str:
    profiles = hold.get("recipient_profiles") or []
    if profiles:
        return ", ".join(present.display_name(p) for p in profiles)
    return ", ".join(hold.get("recipients") or [])


def _why(hold: dict[str, Any]) -> str:
    profiles = hold.get("recipient_profiles") or []
    return "; ".join(present.reason_text(m, profiles) for m in hold.get("policies") or [])


def message(
    holds: list[dict[str, Any]], public_url: str | None, reminder: bool = False
) -> dict[str, Any]:
    """One Slack message announcing `holds` (review API `Hold`s with profiles)."""
    first = holds[0]
    n = len(holds)
    label = ", ".join(
        dict.fromkeys(present.policy_label(m["policy"]) for m in first.get("policies") or [])
    )
    if reminder:
        title = f"{n} held DM{'s' if n > 1 else ''} still waiting for review"
    elif n > 1:
        title = f"{n} held DMs from {first['account']}: {label or 'held'}"
    else:
        title = f"Held DM from {first['account']} to {_who(first)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, MAX_HEADER_TEXT)}}
    ]
    if n > 1 and not reminder:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(
                        f"*Same text to {n} people* (one campaign). The first copy:\n"
                        + _quote(first["text"], MAX_SECTION_TEXT - 200),
                        MAX_SECTION_TEXT,
                    ),
                },
            }
        )
    blocks += [_hold_section(h, public_url, n == 1 or reminder) for h in holds[:MAX_LISTED]]
    if n > MAX_LISTED:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"and {n - MAX_LISTED} more"}],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _cut(f"{first['platform']} · held by dmgate", 200)}
            ],
        }
    )
    # The top-level text is mrkdwn too (notifications, clients without blocks): the title
    # carries recipients' display names, someone else's words (`<!channel>`, links).
    fallback = _cut(f"{_escape(title)}: {_escape(first['text'])}", MAX_FALLBACK_TEXT)
    return {"text": fallback, "blocks": blocks[:MAX_BLOCKS]}


def _hold_section(hold: dict[str, Any], public_url: str | None, text: bool) -> dict[str, Any]:
    """One held DM: to whom, why, (its text,) and a button to its page."""
    lines = [f"*To:* {_escape(_who(hold))}", f"*Why:* {_escape(_why(hold))}"]
    if text:
        lines.append(_quote(hold["text"], 1500))
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), MAX_SECTION_TEXT)},
    }
    link = hold_link(public_url, hold["id"])
    if link and len(link) <= MAX_URL:
        section["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Review"},
            "url": link,
            "action_id": f"review-{hold['id']}",
        }
    return section


def check_limits(payload: dict[str, Any]) -> list[str]:
    """Every way `payload` breaks Block Kit's limits (empty: it fits)."""
    problems = []
    blocks = payload.get("blocks", [])
    if not isinstance(payload.get("text"), str) or len(payload["text"]) > MAX_FALLBACK_TEXT:
        problems.append("text missing or too long")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or len(text["text"]) > MAX_HEADER_TEXT:
                problems.append(f"block {i}: header text")
        elif kind == "section":
            if not 1 <= len(block["text"]["text"]) <= MAX_SECTION_TEXT:
                problems.append(f"block {i}: section text length")
            button = block.get("accessory")
            if button is not None and (
                len(button["text"]["text"]) > MAX_BUTTON_TEXT or len(button["url"]) > MAX_URL
            ):
                problems.append(f"block {i}: button")
        elif kind == "context":
            if not 1 <= len(block["elements"]) <= MAX_CONTEXT_ELEMENTS:
                problems.append(f"block {i}: context elements")
            for element in block["elements"]:
                if len(element["text"]) > MAX_SECTION_TEXT:
                    problems.append(f"block {i}: context text")
        else:
            problems.append(f"block {i}: unexpected type {kind}")
        if "block_id" in block and len(block["block_id"]) > 255:
            problems.append(f"block {i}: block_id")
    return problems
