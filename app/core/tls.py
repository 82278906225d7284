"""One TLS context per process for every outgoing httpx client.

Building an SSL context loads the CA bundle, which httpx pays for every new client, even
one that only ever speaks plain http. The worker makes a client per repodata refresh and
per archive run, so it shares this one instead.
"""

from __future__ import annotations

import ssl
from functools import lru_cache

import httpx


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """The default verifying context (certifi's CA bundle, as httpx builds it)."""
    return httpx.create_ssl_context()
