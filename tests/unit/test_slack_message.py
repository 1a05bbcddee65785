"""The Slack message announcing a hold: every string someone else wrote (the DM text, the
recipients' display names) reaches Slack's mrkdwn escaped, in the blocks and in the
top-level text that notifications show."""

from __future__ import annotations

import json

from proxy.inbox import slack

HOSTILE = "<!channel> <https://evil.example|Approve here>"


def test_a_recipients_display_name_cannot_mention_channel_or_forge_a_link() -> None:
    hold = {
        "id": "h1",
        "account": "100",
        "platform": "x",
        "text": "Thanks for the follow! <!here>",
        "recipients": ["902"],
        "recipient_profiles": [{"id": "902", "name": HOSTILE, "username": "mallory"}],
        "policies": [{"policy": "follow_timing", "reason": "follow_timing: recipient 902 4s"}],
    }
    message = slack.message([hold], "https://dmgate.example")
    assert message["text"].startswith(
        "Held DM from 100 to &lt;!channel&gt; &lt;https://evil.example|Approve here&gt; "
    )
    # mrkdwn anywhere in the message: no raw `<` from the name or the text. The header
    # block is plain_text, which Slack never reads as markup.
    mrkdwn = [message["text"]] + [
        b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("type") == "mrkdwn"
    ]
    assert all("<!" not in t and "<https://evil" not in t for t in mrkdwn), json.dumps(mrkdwn)
