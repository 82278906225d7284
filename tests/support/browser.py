"""Headless Chromium for the page tests: find it, run it, dump a page's DOM, take a screenshot.

Debian's chromium runs as a subprocess (no driver): `--dump-dom` gives the DOM it built and
`--screenshot` a PNG of what a reader sees.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest


def find_chromium() -> str:
    """The chromium binary; a failure in CI (which installs it), a skip elsewhere."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install chromium); set CI to make this fail")


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def dump_dom(chromium: str, tmp_path: Path, url: str) -> str:
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url).stdout
    assert "</html>" in dom, f"chromium built no DOM for {url}"
    assert "<script" not in dom  # readable without JavaScript: there is none
    return dom


def screenshot(chromium: str, tmp_path: Path, url: str, name: str, width: int, height: int) -> Path:
    path = tmp_path / f"{name}.png"
    run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={path}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        url,
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    drawn_width, drawn_height = struct.unpack(">II", data[16:24])
    assert (drawn_width, drawn_height) == (width, height)
    assert len(data) > 5000, f"{path} looks blank ({len(data)} bytes)"
    return path
