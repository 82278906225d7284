"""The pages in a real browser: Debian's Chromium, headless.

Chromium is driven as a subprocess (`--dump-dom` for the DOM it built, `--screenshot`
for what it drew), so no browser-automation package is needed. The pages carry no
script at all (the DOM checks assert it), so they read the same with JavaScript off;
headless Chromium's dump and screenshot need scripting on, so it stays on. Without Chromium the
tests skip, except in CI (`.ci/run` installs it), where its absence is a failure.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import dump_dom, find_chromium, screenshot
from tests.support.service import Service
from tests.support.solving import solve_lock

pytestmark = pytest.mark.process  # condarchive runs as real processes


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


@pytest.fixture(scope="module")
def http(embedded: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def locks(http: httpx.Client, channel_url: str) -> tuple[str, str]:
    a = solve_lock(http, channel_url, ["numlib<1.26", "pyutil"], ["linux-64", "osx-arm64"])
    b = solve_lock(
        http, channel_url, ["numlib>=1.26", "torchlike"], ["linux-64", "linux-64-cuda12"]
    )
    return a, b


def test_lock_page_in_chromium(
    chromium: str, http: httpx.Client, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    lock_id = locks[1]
    url = f"{embedded.url}/l/{lock_id}"
    dom = dump_dom(chromium, tmp_path, url)
    lock = http.get(f"/api/v1/locks/{lock_id}").json()
    assert dom.count('<table class="packages">') == len(lock["targets"]) == 2
    for target in lock["targets"].values():
        for package in target["packages"]:
            assert f"<td>{package['name']}</td>" in dom or f">{package['name']}</a>" in dom
            assert package["sha256"] in dom
    text = html.unescape(dom)
    for target in lock["targets"]:
        assert f"--file '{url}/explicit/{target}.txt'" in text  # conda
        assert f"-o {target}.txt '{url}/explicit/{target}.txt'" in text  # micromamba
        assert f"environment.yml?target={target}'" in text  # pixi
    assert text.count('data-tool="micromamba"') == 2
    assert "@misc{condarchive_" in text and "date-released:" in text
    desktop = screenshot(chromium, tmp_path, url, "lock-desktop", 1280, 2000)
    phone = screenshot(chromium, tmp_path, url, "lock-phone", 390, 844)
    assert desktop.exists() and phone.exists()


def test_diff_page_in_chromium(
    chromium: str, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    a, b = locks
    url = f"{embedded.url}/l/{a}/diff/{b}"
    dom = dump_dom(chromium, tmp_path, url)
    assert '<table class="diff">' in dom
    assert '<tr class="changed"><td>~</td><td>numlib' in dom
    assert '<tr class="added"><td>+</td><td>torchlike</td>' in dom
    assert "Only in" in dom  # osx-arm64 and linux-64-cuda12 are each in one lock
    screenshot(chromium, tmp_path, url, "diff-phone", 390, 844)


def test_index_and_404_pages_in_chromium(
    chromium: str, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    dom = dump_dom(chromium, tmp_path, f"{embedded.url}/locks?package=numlib&version=%3E%3D1.26")
    assert f'href="/l/{locks[1]}"' in dom and f'href="/l/{locks[0]}"' not in dom
    missing = dump_dom(chromium, tmp_path, f"{embedded.url}/l/{'0' * 64}")
    assert "Lock not found" in missing
    screenshot(chromium, tmp_path, f"{embedded.url}/locks", "index-phone", 390, 844)
