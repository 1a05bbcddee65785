"""Platform adapters, one module per network, and the one registry that names them."""

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


def get_platform(name: str) -> Platform:
    """A fresh adapter for the platform called `name`."""
    try:
        cls = PLATFORMS[name]
    except KeyError:
        known = ", ".join(sorted(PLATFORMS))
        raise KeyError(f"unknown platform {name!r}; known platforms: {known}") from None
    return cls()
