"""Channel names and URLs: how they resolve, and which ones the service may fetch.

A server that fetches URLs its users send is an SSRF hole, so every channel goes
through :func:`resolve_allowed_channel` before a solve is queued.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit, urlunsplit

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
        if any(_prefix_matches(url, prefix) for prefix in _entry_prefixes(entry, channel_alias)):
            return True
    return False


@lru_cache(maxsize=256)
def _entry_prefixes(entry: str, channel_alias: str) -> tuple[str, ...]:
    """An allowlist entry's URL prefixes (cached: every locked package URL is checked)."""
    try:
        return tuple(resolve_channel(entry, channel_alias))
    except ChannelError:
        return ()


@lru_cache(maxsize=4096)  # every locked package URL is checked; they share few hosts
def is_private_host(host: str | None) -> bool:
    """True for `localhost` and IP literals that are private, loopback, link-local (the cloud
    metadata service at 169.254.169.254), reserved, multicast or unspecified.

    Host names are not resolved: a name the operator lists is trusted, and a DNS answer
    checked now may differ from the one used to connect (DNS rebinding); an egress firewall
    is the place to pin addresses.
    """
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


@lru_cache(maxsize=64)
def _listed_hosts(allowed: tuple[str, ...], channel_alias: str) -> frozenset[str]:
    """Hosts the operator named: those of URL entries, and the alias's when names are used."""
    hosts = {(urlsplit(e.strip()).hostname or "") for e in allowed if is_url(e)}
    if any(not is_url(e) for e in allowed):
        hosts.add(urlsplit(channel_alias).hostname or "")
    return frozenset(hosts - {""})


def check_address(
    url: str, allowed: list[str], channel_alias: str, setting: str = "CONDARCHIVE_ALLOWED_CHANNELS"
) -> None:
    """Refuse a URL whose host is a private address the allowlist does not name itself."""
    host = urlsplit(url).hostname
    if is_private_host(host) and host not in _listed_hosts(tuple(allowed), channel_alias):
        raise ChannelError(
            f"{url} points at a private, loopback or link-local address ({host}) that is "
            f"not in {setting}; such hosts are fetched only if listed there"
        )


def fetch_refusal(
    url: str, allowed: list[str], channel_alias: str, setting: str = "CONDARCHIVE_ALLOWED_CHANNELS"
) -> str | None:
    """Why the service must not fetch `url` (a package file, or where a redirect points),
    or None when it may.

    Only where a channel could be: http(s) (or file:// where listed), no credentials, no
    dot segments, not a private address the allowlist does not name, and inside the
    allowlist. So a channel whose files live on a CDN (or whose repodata sets `base_url`)
    needs that host listed.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "file"):
        return f"{url} is not an http(s) URL"
    if parts.username or parts.password:
        return f"{url} carries credentials"
    if any(seg in (".", "..") for seg in unquote(parts.path).replace("\\", "/").split("/")):
        return f"{url} has '.' or '..' in its path"
    base = urlunsplit((scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))
    try:
        check_address(base, allowed, channel_alias, setting)
    except ChannelError as exc:
        return str(exc)
    if not is_allowed(base, allowed, channel_alias):
        return f"{url} is not in {setting}"
    return None


def resolve_allowed_channel(channel: str, allowed: list[str], channel_alias: str) -> list[str]:
    urls = resolve_channel(channel, channel_alias)
    for url in urls:
        check_address(url, allowed, channel_alias)
        if not is_allowed(url, allowed, channel_alias):
            raise ChannelError(
                f"channel {channel!r} ({url}) is not in CONDARCHIVE_ALLOWED_CHANNELS; "
                "ask the operator to add it"
            )
    return urls


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@lru_cache(maxsize=64)
def _listed_origins(
    allowed: tuple[str, ...], channel_alias: str
) -> frozenset[tuple[str, str, int]]:
    """(scheme, host, port) of every allowlist entry (an entry that is a name: the alias's)."""
    origins = set()
    for entry in allowed:
        url = entry.strip() if is_url(entry) else channel_alias
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if parts.hostname and scheme in ("http", "https"):
            try:
                port = parts.port or _default_port(scheme)
            except ValueError:
                continue
            origins.add((scheme, parts.hostname.rstrip("."), port))
    return frozenset(origins)


def origin_refusal(
    scheme: str, host: str, port: int, allowed: list[str], channel_alias: str
) -> str | None:
    """Why the service must not open a connection to `scheme://host:port`, or None.

    For an https tunnel (CONNECT) the path is not visible, so this is the whole check there:
    the origin (scheme, host and port) must be one an allowlist entry names.
    """
    host = host.strip("[]").lower().rstrip(".")
    if (scheme, host, port) not in _listed_origins(tuple(allowed), channel_alias):
        return (
            f"{scheme}://{host}:{port} is not the host and port of any entry in "
            "CONDARCHIVE_ALLOWED_CHANNELS"
        )
    return None


def address_refusal(
    host: str, addresses: list[str], allowed: list[str], channel_alias: str
) -> str | None:
    """Why the service must not connect to `host` at the addresses DNS gave for it, or None.

    A private, loopback, link-local (cloud metadata), reserved or multicast address is
    fetched only where the allowlist names it: by the address itself (an entry such as
    ``http://127.0.0.1:9000``), or by the host name that resolved to it, so a lab's
    internal mirror can be listed by its name. A link-local address (the cloud metadata
    service) is fetched only when listed as an address. Any other host that resolves to
    such an address (a redirect to a name whose DNS points inside) is refused.
    """
    host = host.strip("[]").lower().rstrip(".")
    listed = _listed_hosts(tuple(allowed), channel_alias)
    for address in addresses:
        if not is_private_host(address):
            continue
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if str(ip) in listed or address in listed:
            continue
        if host in listed and not ip.is_link_local:
            continue
        return (
            f"{host} resolves to {ip}, a private, loopback or link-local address that "
            "CONDARCHIVE_ALLOWED_CHANNELS does not name"
        )
    return None
