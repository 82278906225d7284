"""Lockfile renderers: one module per format, each a pure function of the lock dict.

:func:`render` is the one entry point routes and the CLI use; :data:`FORMATS` says which
formats exist, whether they need a target, and how they are served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.locks.formats import (
    conda_lock,
    environment_yml,
    explicit,
    pixi,
    pylock,
    requirements,
)
from app.locks.formats.base import CannotExpress, Lock, LockfileError, UnknownTarget


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    per_target: bool  # one file per target (explicit, env) or one for the whole lock
    render: Callable[[Lock, str | None], bytes]


def _text(render: Callable[[Lock, str | None], str]) -> Callable[[Lock, str | None], bytes]:
    return lambda lock, target: render(lock, target).encode()


FORMATS: dict[str, Format] = {
    "explicit": Format("explicit", explicit.MEDIA_TYPE, True, _text(explicit.render_explicit)),
    "conda-lock": Format(
        "conda-lock",
        conda_lock.MEDIA_TYPE,
        False,
        lambda lock, _target: conda_lock.render_conda_lock(lock).encode(),
    ),
    "pixi": Format("pixi", pixi.MEDIA_TYPE, False, lambda lock, _target: pixi.render_pixi(lock)),
    "env": Format(
        "env", environment_yml.MEDIA_TYPE, True, _text(environment_yml.render_environment_yml)
    ),
    "requirements": Format(
        "requirements",
        requirements.MEDIA_TYPE,
        True,
        _text(lambda lock, target: requirements.render_requirements(lock, target)),
    ),
    "pylock": Format(
        "pylock", pylock.MEDIA_TYPE, True, _text(lambda lock, t: pylock.render_pylock(lock, t))
    ),
}

#: Formats of the PyPI part alone, which can point at the archive's copies (`urls`).
PYPI_RENDERERS: dict[str, Callable[[Lock, str | None, dict[str, str] | None], str]] = {
    "requirements": requirements.render_requirements,
    "pylock": pylock.render_pylock,
}


def render(
    fmt: str, lock: Lock, target: str | None = None, urls: dict[str, str] | None = None
) -> bytes:
    """Render `lock` as `fmt`; raises :class:`LockfileError` subclasses a route maps to 4xx.

    `urls` (original URL -> archive URL) is for the PyPI formats only
    (:data:`PYPI_RENDERERS`): their files then point at the archive's copies.
    """
    if fmt not in FORMATS:
        raise LockfileError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if urls is not None:
        if fmt not in PYPI_RENDERERS:
            raise LockfileError(f"{fmt} cannot be rendered from archive URLs here")
        return PYPI_RENDERERS[fmt](lock, target, urls).encode()
    return FORMATS[fmt].render(lock, target)


def formats_for(lock: Lock) -> list[str]:
    """The formats that can express this whole lock (for a 409 that says where to go)."""
    able = []
    for name in FORMATS:
        if name in PYPI_RENDERERS:  # the PyPI part only
            continue
        if name == "conda-lock":
            try:
                conda_lock.check_expressible(lock)
            except CannotExpress:
                continue
        able.append(name)
    return able


__all__ = [
    "FORMATS",
    "PYPI_RENDERERS",
    "CannotExpress",
    "Format",
    "LockfileError",
    "UnknownTarget",
    "formats_for",
    "render",
]
