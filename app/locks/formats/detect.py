"""Which lockfile format a text is, and the parser for it.

Three formats: an explicit file (`conda list --explicit --md5`), conda-lock's v1
`conda-lock.yml`, and `pixi.lock`. Parsing touches no network; app/locks/import_check.py
checks the entries against the channels afterwards.
"""

from __future__ import annotations

import yaml

from app.core import safe_yaml
from app.errors import InputError
from app.locks.formats.conda_lock import parse_conda_lock
from app.locks.formats.entries import LineError, ParsedFile
from app.locks.formats.explicit import parse_explicit
from app.locks.formats.pixi import parse_pixi

FORMATS = ("explicit", "conda-lock", "pixi")


def detect_format(text: str) -> str:
    """`explicit` if an `@EXPLICIT` line is present, else by the YAML document's keys."""
    if any(line.strip() == "@EXPLICIT" for line in text.splitlines()):
        return "explicit"
    try:
        data = safe_yaml.load(text)
    except safe_yaml.YamlLimitError as exc:  # not a format question: say which limit
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise LineError(line, f"YAML refused: {exc.problem}") from exc
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        if "package" in data and "metadata" in data:
            return "conda-lock"
        if "environments" in data and "packages" in data:
            return "pixi"
    raise LineError(
        0,
        "cannot tell the format: expected an explicit file (with an @EXPLICIT line), "
        "a conda-lock.yml (version, metadata, package) or a pixi.lock "
        "(version, environments, packages); or send 'format'",
    )


def parse_lockfile(
    text: str, fmt: str | None, platform: str | None = None, environment: str | None = None
) -> ParsedFile:
    """Parse `text` as `fmt` (detected when None)."""
    fmt = fmt or detect_format(text)
    if fmt == "explicit":
        return parse_explicit(text, platform)
    if fmt == "conda-lock":
        return parse_conda_lock(text)
    if fmt == "pixi":
        return parse_pixi(text, environment)
    raise InputError(["body", "format"], f"unknown format {fmt!r}; expected {', '.join(FORMATS)}")
