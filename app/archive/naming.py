"""Archive channel names and the URLs the archive serves packages at.

Archived packages are served as conda channels at ``/channels/{name}/``. ``name`` is derived
from the upstream channel URL alone, so it never changes: the URL's last path segment
(lower-cased, anything outside ``[a-z0-9._-]`` replaced by ``-``), a dash, and the first 8
hex digits of the sha256 of the URL (trailing ``/`` removed). For example
``https://conda.anaconda.org/conda-forge`` -> ``conda-forge-<8 hex>``. Names configured in
``CONDARCHIVE_PROXY_CHANNELS`` also serve that upstream's archived packages.

Two URLs serve an archived file:

- ``/channels/{name}/{subdir}/{filename}``, the archive channel's own: when upstream
  replaced a file under the same name, it serves the first copy archived (listed with
  that copy's hashes), so its bytes never change;
- ``/channels/{name}/sha256/{sha256}/{subdir}/{filename}``, by content: exactly the blob
  with that sha256, whichever copy it is. A lock's archive URLs are these, so each lock
  gets its own bytes. ``/channels/{name}/sha256/{sha256}`` is a channel too: its
  ``{subdir}/repodata.json`` lists that one file, with the blob's hashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from app.db.models import PackageFile


def channel_name(channel_url: str) -> str:
    """The stable archive channel name of an upstream channel URL (see the module doc)."""
    url = channel_url.rstrip("/")
    last = url.rsplit("/", 1)[-1].lower() or "channel"
    slug = re.sub(r"[^a-z0-9._-]+", "-", last).strip("-.")[:40] or "channel"
    return f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def archive_url(base_url: str, package: PackageFile | Mapping[str, Any], sha256: str) -> str:
    """Where the archive serves exactly the blob `sha256` of a package (see the module doc).

    `package` is a package row or a package of the lock JSON (``channel``, ``subdir``,
    ``filename`` keys), so renderers can point a lockfile at the archive.
    """
    if isinstance(package, Mapping):
        channel, subdir, filename = package["channel"], package["subdir"], package["filename"]
    else:
        channel, subdir, filename = package.channel, package.subdir, package.filename
    base = base_url.rstrip("/")
    return f"{base}/channels/{channel_name(channel)}/sha256/{sha256}/{subdir}/{filename}"


def archive_channel_url(base_url: str, channel_url: str) -> str:
    return f"{base_url.rstrip('/')}/channels/{channel_name(channel_url)}"
