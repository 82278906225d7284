"""The pages as a reader meets them, in headless Chromium (as tests/test_pages_browser.py):
the lock page leads with its permalink, citation and restore commands; the index says
what the service is and what each lock holds; /docs renders with no internet.

Screenshots of the lock page, the index and the diff page are kept in /tmp/shots14/
(or $CONDARCHIVE_SHOTS) for a person to look at.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import dump_dom, find_chromium, run_chromium, screenshot
from tests.support.service import Service
from tests.support.solving import solve_lock

pytestmark = pytest.mark.process  # condarchive runs as real processes

SHOTS = Path(os.environ.get("CONDARCHIVE_SHOTS", "/tmp/shots14"))
TITLE = "Environment for the figures of Smith et al. 2026"
#: Only the service answers: every other host name resolves to nothing.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


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
        http,
        channel_url,
        ["numlib>=1.26", "torchlike"],
        ["linux-64", "linux-64-cuda12"],
        title=TITLE,
        authors=["Ada Lovelace", {"given_names": "Grace", "family_names": "Hopper"}],
        description="Every figure was made in this environment.",
    )
    return a, b


def _cells(row: str) -> list[str]:
    return re.findall(r"<t[hd]\b[^>]*>", row)


def test_lock_page_leads_with_permalink_citation_and_restore(
    chromium: str, http: httpx.Client, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    lock_id = locks[1]
    url = f"{embedded.url}/l/{lock_id}"
    dom = dump_dom(chromium, tmp_path, url)
    text = html.unescape(dom)
    first_target = dom.index('<section class="target"')
    for anchor in ('id="permalink"', 'id="restore"', 'id="cite"', 'id="bibtex"'):
        assert dom.index(anchor) < first_target, anchor
    assert f'<h1 id="title">{TITLE}' in text
    assert "Every figure was made in this environment." in text
    restore = text[text.index('id="restore"') : first_target]
    for target in ("linux-64", "linux-64-cuda12"):
        assert f"--file '{url}/explicit/{target}.txt'" in restore
    # Not archived yet, or archived: either the command or the reason there is none.
    archive = http.get(f"/api/v1/locks/{lock_id}/archive").json()
    for name, target in archive["targets"].items():
        row = restore[restore.index(f'id="restore-{name}"') :].split("</tr>")[0]
        if target["status"] == "archived":
            assert f"condarchive install {lock_id[:12]} --target {name} --prefix ./env" in row
        else:
            assert "No condarchive install command:" in re.sub(r"<[^>]+>", "", row)
    # The citation links download.
    assert http.get(f"/l/{lock_id}/CITATION.cff").status_code == 200
    assert http.get(f"/l/{lock_id}/citation.bib").status_code == 200
    # Provenance is a table, not a JSON dump.
    provenance = dom[dom.index('<section id="provenance">') :].split("</section>")[0]
    assert '<table class="provenance' in provenance and "{" not in provenance
    assert "py-rattler" in provenance and "<pre" not in provenance
    # Package names never break mid-word; every table's rows have as many cells as headers.
    assert '<td class="name">' in dom and re.search(r"td\.name[^{]*\{[^}]*nowrap", dom)
    for table in re.findall(
        r"<table class=\"(?:packages|archive-targets|restore)\".*?</table>", dom, re.S
    ):
        rows = re.findall(r"<tr\b.*?</tr>", table, re.S)
        width = len(_cells(rows[0]))
        assert all(len(_cells(r)) == width for r in rows), table[:200]
        head = re.findall(r"<th\b[^>]*>", rows[0])
        body = re.findall(r"<td\b[^>]*>", rows[1])
        for th, td in zip(head, body, strict=True):  # numbers right-aligned under their header
            assert ('class="num"' in th) == ("num" in td), (th, td)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "lock.png").write_bytes(
        screenshot(chromium, tmp_path, url, "lock", 1280, 2400).read_bytes()
    )
    (SHOTS / "lock-phone.png").write_bytes(
        screenshot(chromium, tmp_path, url, "lock-phone", 390, 1600).read_bytes()
    )


def test_index_says_what_the_service_is_and_what_each_lock_holds(
    chromium: str, http: httpx.Client, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    dom = dump_dom(chromium, tmp_path, f"{embedded.url}/")
    text = html.unescape(dom)
    about = text[text.index('id="about"') :].split("</section>")[0]
    assert "cited" in about and "archive" in about and "/docs" in about
    for lock_id in locks:
        row = dom[dom.index(f'id="lock-{lock_id[:12]}"') :].split("</tr>")[0]
        lock = http.get(f"/api/v1/locks/{lock_id}").json()
        packages = {p["url"] for t in lock["targets"].values() for p in t["packages"]}
        assert f'<td class="num package-count">{len(packages)}</td>' in row
        for name, target in lock["targets"].items():
            assert f"{name} ({len(target['packages'])})" in row
        assert 'class="archive-state archive-' in row
        state = http.get(f"/api/v1/locks/{lock_id}/archive").json()["status"]
        assert state.replace("_", " ") in row or state in ("queued", "running", "pending")
        assert "testchan" in row
    assert f">{TITLE}</a>" in html.unescape(
        dom[dom.index(f'id="lock-{locks[1][:12]}"') :].split("</tr>")[0]
    )
    assert f">lock-{locks[0][:12]}</a>" in dom  # no title, no name: the short id
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "index.png").write_bytes(
        screenshot(chromium, tmp_path, f"{embedded.url}/", "index", 1280, 1000).read_bytes()
    )


def test_diff_page_screenshot(
    chromium: str, embedded: Service, locks: tuple[str, str], tmp_path: Path
) -> None:
    a, b = locks
    url = f"{embedded.url}/l/{a}/diff/{b}"
    assert '<table class="diff">' in dump_dom(chromium, tmp_path, url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "diff.png").write_bytes(
        screenshot(chromium, tmp_path, url, "diff", 1280, 1000).read_bytes()
    )


def test_docs_render_with_no_internet(
    chromium: str, http: httpx.Client, embedded: Service, tmp_path: Path
) -> None:
    page = http.get("/docs").text
    assert "cdn." not in page and "/docs/assets/swagger-ui-bundle.js" in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = http.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert http.get("/docs/assets/..%2Fcore.py").status_code == 404
    assert "cdn." not in http.get("/redoc").text
    dom = run_chromium(
        chromium,
        tmp_path / "profile",
        OFFLINE,
        "--virtual-time-budget=20000",
        "--dump-dom",
        f"{embedded.url}/docs",
    ).stdout
    assert 'class="swagger-ui' in dom
    assert "opblock-summary-path" in dom, dom[-2000:]  # the operations list rendered
    assert "/api/v1/solves" in dom
