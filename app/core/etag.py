"""Strong HTTP entity tags: the sha256 of the exact bytes sent.

Pure, so both the archive (which stores repodata with its ETags) and the web layer (which
answers If-None-Match) compute them the same way.
"""

from __future__ import annotations

import hashlib


def etag_of(body: bytes) -> str:
    """A strong ETag: the sha256 of the exact bytes sent, quoted."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'
