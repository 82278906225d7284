"""Jinja2 for the server-rendered pages: autoescape on for every template, a few filters.

Pages are rendered to a string (not streamed) so a response can carry a strong ETag.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader

TEMPLATES = Path(__file__).parent / "templates"


def filesize(size: int | None) -> str:
    """1536 -> '1.5 KiB'; sizes in a package table should be readable at a glance."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def channel_label(url: str) -> str:
    """`https://conda.anaconda.org/conda-forge` -> `conda-forge`; other URLs stay whole."""
    parts = urlsplit(url)
    if parts.netloc == "conda.anaconda.org":
        return parts.path.strip("/")
    return url


@lru_cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["filesize"] = filesize
    env.filters["channel_label"] = channel_label
    return env


def render_page(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
