"""Channel names and URLs: how they resolve, and which ones the service may fetch.

A server that fetches URLs its users send is an SSRF hole, so every channel goes
through :func:`resolve_allowed_channel` before a solve is queued.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import rattler

#: conda's `defaults` on the platforms we solve for (msys2 only matters on Windows and
#: has no other subdirs worth fetching, so it is left to be named explicitly).
DEFAULTS_CHANNELS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")


#: A channel name (with labels: `conda-forge/label/dev`). Anything else, such as `?`, `#`,
#: `%` or a backslash, would change the URL it resolves to in ways a prefix check misses.
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*/?$")


class ChannelError(ValueError):
    """A channel that cannot be used, with the reason."""


def is_url(channel: str) -> bool:
    return "://" in channel


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, no trailing slash, no query or fragment.

    The result must be the URL the solver will really fetch. py-rattler parses URLs the
    WHATWG way, which resolves ``..`` (also as ``%2e%2e`` or between backslashes) and drops
    default ports, so ``conda-forge/../evil`` would pass a prefix check yet fetch ``evil``.
    A URL that py-rattler reads differently is refused rather than silently rewritten.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in {"http", "https", "file"}:
        raise ChannelError(f"channel URL {url!r} must use http, https or file")
    if parts.username or parts.password:
        raise ChannelError(f"channel URL {url!r} must not carry credentials")
    netloc = parts.netloc.lower()
    normalised = urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))
    try:
        fetched = rattler.Channel(normalised + "/").base_url.rstrip("/")
    except Exception as exc:  # rattler's own parse errors
        raise ChannelError(f"channel URL {url!r} is not a valid URL: {exc}") from exc
    if fetched != normalised:
        raise ChannelError(
            f"channel URL {url!r} is not in normal form (it would fetch {fetched}); "
            "give the URL without '.', '..', default ports or other escapes"
        )
    return normalised


def resolve_channel(channel: str, channel_alias: str) -> list[str]:
    """A channel as users write it (`conda-forge`, `defaults`, a URL) -> base URLs."""
    channel = channel.strip()
    if not channel:
        raise ChannelError("empty channel name")
    if channel == "defaults":
        return list(DEFAULTS_CHANNELS)
    if is_url(channel):
        return [normalise_url(channel)]
    if not _CHANNEL_NAME.match(channel) or ".." in channel.split("/"):
        raise ChannelError(f"channel name {channel!r} is not a channel name or URL")
    return [normalise_url(f"{channel_alias.rstrip('/')}/{channel.strip('/')}")]


def _prefix_matches(url: str, prefix: str) -> bool:
    return url == prefix or url.startswith(prefix + "/")


def is_allowed(url: str, allowed: list[str], channel_alias: str) -> bool:
    """True when `url` equals or lies under an allowlist entry (names resolve via the alias).

    Matching is by whole path segments, so `conda-forge` never admits `conda-forge-evil`.
    """
    for entry in allowed:
        try:
            prefixes = resolve_channel(entry, channel_alias)
        except ChannelError:
            continue
        if any(_prefix_matches(url, prefix) for prefix in prefixes):
            return True
    return False


def resolve_allowed_channel(channel: str, allowed: list[str], channel_alias: str) -> list[str]:
    urls = resolve_channel(channel, channel_alias)
    for url in urls:
        if not is_allowed(url, allowed, channel_alias):
            raise ChannelError(
                f"channel {channel!r} ({url}) is not in CONDARCHIVE_ALLOWED_CHANNELS; "
                "ask the operator to add it"
            )
    return urls
