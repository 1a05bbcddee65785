"""Platform adapters, one module per network, and the one registry that names them.

Adding a network is one module here implementing `base.Platform`, plus its entry in
`PLATFORMS`:

1. `name`: the key route settings use (`{"platform": "x"}`); never "none".
2. `routes`: a `routes.RouteTable` of the endpoints dmgate tells apart, each a
   `routes.Route(endpoint, method, kind, route_pattern(...))`: the DM sends (`Kind.DM`,
   with the `reads` the network serves on their paths: every other method is refused)
   and the answers worth learning from (`Kind.SIGNAL`). `classify` reads the path
   against them once; override it only when the method is not the request's own (Graph's
   `method` parameter, `meta.py`).
3. `credential(req)`: the secret that names the calling user (a bearer token, a
   session cookie).
4. `parse_dm(call, body)`: recipients and text of a send, switching on `call.endpoint`
   and reading `call.params`; `BadDMRequest` for anything it cannot read exactly as the
   network would (`jsonbody`, `ids` and `shapes` hold the shared strict readers;
   `ambiguity` the parser differentials every DM endpoint refuses: a key twice, `;` in
   the query, a parameter in both query and body, two `name=` in a multipart part). An
   edit of a sent message sets `edit_of` (the pipeline asks whether that message was a
   DM); a batch of messages to different people sets `parts` (each judged on its own).
5. `replace_text(call, body, text)`: a reviewer's edit, in the body's own encoding.
6. `hold_response` and `block_response`: the network's own success answer for a send
   and its own 403 (`shapes` has stand-in ids and times).
7. `learn_from(call, account, doc)`: `proxy.facts` from a signal answer; `learn` in the
   base class already skips failed and odd answers.
8. When the network allows it: `account_from_request` (the request proves its sender)
   and `whoami` (the network's "who am I" call); `recipients_for` when the send names
   the sender among its recipients; `rewrite_response` for answers that would lead the
   client around dmgate; for networks whose DMs can be edited, `learn_sent` (a sent
   DM's id from the answer to its send) and `edited_lookup` (the network's read of a
   message dmgate never saw sent, answered through a signal route).
9. Webhooks, if the network pushes events: the three methods of `base.WebhookPlatform`
   (`/webhooks/{platform}` answers 404 for adapters without them).
10. Tests: `tests/unit/test_<name>_platform.py`, and a fake upstream in `tests/fakes/`
    for the integration tests.
"""

from __future__ import annotations

from proxy.platforms.base import Platform
from proxy.platforms.bluesky import BlueskyPlatform
from proxy.platforms.linkedin import LinkedInPlatform
from proxy.platforms.mastodon import MastodonPlatform
from proxy.platforms.meta import MetaPlatform
from proxy.platforms.x import XPlatform

# Route settings name a platform by these keys (`{"platform": "x"}`); dmgate refuses to
# start on any other name except "none" (`proxy.settings.NO_PLATFORM`: never judged), so
# no adapter may be called that.
PLATFORMS: dict[str, type[Platform]] = {
    XPlatform.name: XPlatform,
    MastodonPlatform.name: MastodonPlatform,
    BlueskyPlatform.name: BlueskyPlatform,
    LinkedInPlatform.name: LinkedInPlatform,
    MetaPlatform.name: MetaPlatform,
}
assert "none" not in PLATFORMS, '"none" means "never judged" in route settings'
