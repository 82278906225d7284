"""Outbound HTTP to upstream: every request, and every redirect, stays inside the allowlist.

The allowlist is checked where a channel enters (a solve or import request), but URLs
also come from upstream: a package's URL follows the channel's repodata (which may set
``base_url``), and a redirect can send a checked request anywhere -- the cloud metadata
service, a port on localhost. So each httpx client that fetches from upstream (the
archive's downloads, the pull-through proxy, `verify`) carries :func:`guard_hooks`: httpx
runs the request hook before each request it sends and the response hook on each response
before following it, and a URL the service could not have been asked for directly ends
the request with :class:`FetchRefused`. The request hook also resolves the host and
refuses a private, loopback or link-local address the allowlist does not name
(:func:`app.core.channels.address_refusal`).

py-rattler does its own HTTP (in Rust), so it cannot carry these hooks: its requests go
through the in-process egress proxy instead (app/core/egress_proxy.py), which applies
the same checks to every request and every redirect hop, and connects to the address it
checked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.core.channels import address_refusal, fetch_refusal


class FetchRefused(httpx.HTTPError):
    """A URL outside the allowlist; `target` is it (for a redirect, where it pointed)."""

    def __init__(self, message: str, url: str, target: str) -> None:
        super().__init__(message)
        self.url = url
        self.target = target


def redirect_error(response: httpx.Response, allowed: list[str], alias: str) -> FetchRefused | None:
    """The error for a 3xx response that points where we must not go, else None."""
    if not response.has_redirect_location:
        return None
    target = str(response.url.join(response.headers["location"]))
    reason = fetch_refusal(target, allowed, alias)
    if reason is None:
        return None
    url = str(response.url)
    return FetchRefused(
        f"{url} answered HTTP {response.status_code}, a redirect refused: {reason}", url, target
    )


def addresses_of(host: str, port: int) -> list[str]:
    """Every address DNS gives for `host` (an IP literal is its own answer)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolved_refusal(url: httpx.URL, allowed: list[str], alias: str) -> str | None:
    """Why `url`'s host must not be reached at the addresses it resolves to, or None.

    A name that does not resolve is left to fail as the request's own connect error.
    """
    host = url.host
    if not host or url.scheme not in ("http", "https"):
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return address_refusal(host, [str(info[4][0]) for info in infos], allowed, alias)


def allowlist(allowed: list[str] | None = None, alias: str | None = None) -> tuple[list[str], str]:
    """The allowlist entries and channel alias to check fetches against: the settings'
    where not given."""
    if allowed is not None and alias is not None:
        return allowed, alias
    from app.config import get_settings

    settings = get_settings()
    return (
        settings.allowed_channel_entries if allowed is None else allowed,
        settings.channel_alias if alias is None else alias,
    )


def guard_hooks(
    allowed: list[str] | None = None, alias: str | None = None
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """`event_hooks` for an AsyncClient (default: the settings' allowlist and alias)."""
    entries, channel_alias = allowlist(allowed, alias)

    async def check_request(request: httpx.Request) -> None:
        reason = fetch_refusal(str(request.url), entries, channel_alias)
        if reason is None:
            reason = await resolved_refusal(request.url, entries, channel_alias)
        if reason is not None:
            raise FetchRefused(f"refused to fetch {reason}", str(request.url), str(request.url))

    async def check_response(response: httpx.Response) -> None:
        error = redirect_error(response, entries, channel_alias)
        if error is not None:
            raise error

    return {"request": [check_request], "response": [check_response]}
