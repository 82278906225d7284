"""The CLI's side of auth: send CONDARCHIVE_TOKEN to the condarchive server, and only there.

Every client command (lock, show, export, import, diff, install) builds its httpx client
with :func:`auth_headers`. httpx drops the Authorization header when a redirect leaves
the server's origin; URLs the CLI fetches from elsewhere get :func:`auth_headers_for`.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def auth_headers() -> dict[str, str]:
    """`Authorization: Bearer <CONDARCHIVE_TOKEN>`, or nothing when no token is set."""
    from app.config import get_settings

    token = get_settings().token.strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def auth_headers_for(url: str, server: str) -> dict[str, str]:
    """The token for `url` only when it is on the condarchive server itself."""
    return auth_headers() if _origin(url) == _origin(server) else {}
