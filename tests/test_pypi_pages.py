"""The PyPI part of a lock where a reader meets it: the lock page (its PyPI table, local
lines, the requirements/pylock links and the pip restore step), the diff (API, page, CLI
printer) and the search (API, page) by a PyPI name."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli.locks import print_diff, print_locks
from app.web.lock_page import page_context
from app.web.templating import render_page
from tests.support.browser import find_chromium, screenshot
from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import BETWEEN, PyPIWorld, lock_of


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld) -> Iterator[InProcessClient]:
    service = InProcessService(
        tmp_path_factory.mktemp("pypi-pages-service"), world.channels.url, **world.settings()
    )
    with service.client() as http:
        yield http
    service.close()


@pytest.fixture(scope="module")
def mixed(api: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    """Two targets with platform wheels, a pure wheel, and a local line."""
    environment = world.environment("fast-thing", "-e ./analysis")
    return lock_of(api, {"environment": environment, "targets": ["linux-64", "win-64"]})


def pure_dep_lock(api: InProcessClient, world: PyPIWorld, **extra: Any) -> dict[str, Any]:
    body = {
        "channels": [world.channel_url],
        "dependencies": ["python=3.12"],
        "pypi_dependencies": ["pure-dep"],
        "pypi_indexes": [world.index.url],
        "targets": ["linux-64"],
        **extra,
    }
    return lock_of(api, body)


@pytest.fixture(scope="module")
def old_new(api: InProcessClient, world: PyPIWorld) -> tuple[dict[str, Any], dict[str, Any]]:
    old = pure_dep_lock(api, world, exclude_newer=BETWEEN.isoformat())
    new = pure_dep_lock(api, world)
    return old, new


def page_text(api: InProcessClient, lock_id: str) -> str:
    response = api.get(f"/l/{lock_id}", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    return response.text


def test_lock_page_lists_pypi_packages_and_local_lines(
    api: InProcessClient, mixed: dict[str, Any]
) -> None:
    page = page_text(api, mixed["id"])
    text = html.unescape(page)
    assert page.count('<table class="pypi-packages">') == 2
    for name, target in mixed["targets"].items():
        assert target["pypi_packages"]
        for p in target["pypi_packages"]:
            row = re.search(
                rf'<tr class="pypi-index" id="pypi-{name}-{p["name"]}">(.*?)</tr>', page, re.S
            )
            assert row, f"no row for {p['name']} in {name}"
            cells = row.group(1)
            assert f">{p['name']}</td>" in cells and f">{p['version']}</td>" in cells
            assert f'href="{p["url"]}"' in html.unescape(cells)
            assert f">{p['filename']}</a>" in cells and "wheel" in cells
            assert p["sha256"][:12] in cells and f'title="{p["sha256"]}"' in cells
        # the local line is shown, and said not to be archived
        assert '<code>-e ./analysis</code> <span class="muted">local, not archived</span>' in page
        permalink = re.search(r'id="permalink" href="([^"]+)"', page)
        assert permalink
        base = permalink.group(1)
        assert f'href="{base}/requirements/{name}.txt"' in page
        assert f'href="{base}/pylock/{name}.toml"' in page
        assert f"pip install --require-hashes -r '{base}/requirements/{name}.txt'" in text
        server = base.rsplit("/l/", 1)[0]
        assert (
            f"pip install --require-hashes --index-url '{server}/pypi/simple/' "
            f"-r '{base}/requirements/{name}.txt?source=archive'"
        ) in text
    # as the conda table: as many cells as headers, sizes right-aligned, names unbroken
    for table in re.findall(r'<table class="pypi-packages">.*?</table>', page, re.S):
        rows = re.findall(r"<tr\b.*?</tr>", table, re.S)
        head, body = re.findall(r"<th\b[^>]*>", rows[0]), re.findall(r"<td\b[^>]*>", rows[1])
        assert len(head) == len(body) == 6
        for th, td in zip(head, body, strict=True):
            assert ('class="num"' in th) == ("num" in td), (th, td)
    assert re.search(r"td\.file \.mono[^{]*\{[^}]*nowrap", page)
    linux = {p["name"]: p for p in mixed["targets"]["linux-64"]["pypi_packages"]}
    windows = {p["name"]: p for p in mixed["targets"]["win-64"]["pypi_packages"]}
    assert linux["fast-thing"]["filename"] != windows["fast-thing"]["filename"]
    assert linux["fast-thing"]["filename"] in page and windows["fast-thing"]["filename"] in page
    # why each package is there: the spec that asked for it, or what requires it
    nowrap = '<span class="nowrap">{}</span>'
    assert f'<td class="why">requested: {nowrap.format("fast-thing")}</td>' in page
    assert f'<td class="why">required by {nowrap.format("fast-thing")}</td>' in page  # pure-dep
    assert f'<td class="why">requested: {nowrap.format("python 3.12.*")}</td>' in page


def test_lock_without_pypi_part_has_no_pypi_links(api: InProcessClient, world: PyPIWorld) -> None:
    plain = lock_of(api, {"environment": world.environment(), "targets": ["osx-arm64"]})
    page = page_text(api, plain["id"])
    assert "pypi-packages" not in page and "/requirements/" not in page
    assert "/pylock/" not in page and "pip install" not in page


def test_vcs_package_shows_repository_and_commit() -> None:
    """VCS rows from a lock document (the hermetic index serves no repositories)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    lock = {
        "id": "ab" * 32,
        "created_at": "2026-01-01T00:00:00Z",
        "spec": {"channels": ["https://conda.example/pychan"]},
        "provenance": {},
        "targets": {
            "linux-64": {
                "platform": "linux-64",
                "virtual_packages": [],
                "packages": [],
                "pypi_packages": [
                    {
                        "name": "mytool",
                        "version": "0.3.1",
                        "kind": "vcs",
                        "url": "https://archive.example/pypi/files/mytool-0.3.1.tar.gz",
                        "filename": "mytool-0.3.1.tar.gz",
                        "sha256": "f" * 64,
                        "size": 12345,
                        "requires_python": None,
                        "requires": [],
                        "index": None,
                        "vcs": {
                            "type": "git",
                            "url": "https://github.com/org/mytool",
                            "requested_revision": "v0.3.1",
                            "commit": commit,
                        },
                    }
                ],
                "pypi_local": [],
            }
        },
    }
    page = render_page("lock.html", **page_context(lock, "https://ca.example", [], 0))
    row = re.search(r'<tr class="pypi-vcs"[^>]*>(.*?)</tr>', page, re.S)
    assert row
    assert 'href="https://github.com/org/mytool"' in row.group(1)
    assert commit[:12] in row.group(1) and f'title="{commit}"' in row.group(1)
    assert "v0.3.1" in row.group(1) and "mytool-0.3.1.tar.gz" in row.group(1)


def test_diff_shows_pypi_version_change(
    api: InProcessClient,
    old_new: tuple[dict[str, Any], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = old_new
    assert old["id"] != new["id"]
    response = api.get(f"/api/v1/locks/{old['id']}/diff/{new['id']}")
    assert response.status_code == 200, response.text
    diff = response.json()
    linux = diff["targets"]["linux-64"]
    # conda packages are the same; the PyPI part changed
    assert not (linux["added"] or linux["removed"] or linux["changed"])
    changed = {c["name"]: c for c in linux["pypi"]["changed"]}
    assert set(changed) == {"pure-dep"}
    assert changed["pure-dep"]["fields"] == ["version"]
    assert (changed["pure-dep"]["from"]["version"], changed["pure-dep"]["to"]["version"]) == (
        "1.0",
        "2.0",
    )
    assert changed["pure-dep"]["from"]["source"] == "pypi"
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 1}
    assert diff["pypi_summary"] == {"added": 0, "removed": 0, "changed": 1}

    page = api.get(f"/l/{old['id']}/diff/{new['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    row = re.search(r'<tr class="changed pypi">(.*?)</tr>', page.text, re.S)
    assert row and "pure-dep" in row.group(1) and "(PyPI; version)" in row.group(1)
    assert ">1.0<" in row.group(1) and ">2.0<" in row.group(1)

    print_diff(diff)
    out = capsys.readouterr().out
    assert "~ pure-dep 1.0 -> 2.0 (PyPI; version)" in out
    assert "1 changed" in out


def test_diff_of_added_pypi_packages_and_local_lines(
    api: InProcessClient, world: PyPIWorld, mixed: dict[str, Any]
) -> None:
    plain = lock_of(api, {"environment": world.environment(), "targets": ["linux-64"]})
    diff = api.get(f"/api/v1/locks/{plain['id']}/diff/{mixed['id']}").json()
    pypi = diff["targets"]["linux-64"]["pypi"]
    assert {p["name"] for p in pypi["added"]} == {"fast-thing", "pure-dep"}
    assert all(p["source"] == "pypi" for p in pypi["added"])
    assert pypi["local_added"] == ["-e ./analysis"] and pypi["local_removed"] == []
    page = api.get(f"/l/{plain['id']}/diff/{mixed['id']}", headers={"Accept": "text/html"}).text
    assert page.count('<tr class="added pypi">') == 2 + 2  # linux-64 and win-64 (only in b)
    assert "(pip, local, not archived)" in page


def test_search_by_pypi_name_finds_the_lock(
    api: InProcessClient,
    old_new: tuple[dict[str, Any], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = old_new
    found = api.get("/api/v1/locks", params={"package": "pure-dep"}).json()
    ids = {item["id"] for item in found["items"]}
    assert {old["id"], new["id"]} <= ids
    by_id = {item["id"]: item for item in found["items"]}
    assert {"target": "linux-64", "name": "pure-dep", "version": "1.0"}.items() <= by_id[old["id"]][
        "matches"
    ][0].items()
    assert by_id[old["id"]]["matches"][0]["source"] == "pypi"

    # by version, and by a name spelled another PEP 503 way
    only_new = api.get("/api/v1/locks", params={"package": "Pure_Dep", "version": "2.0"}).json()
    ids = {item["id"] for item in only_new["items"]}
    assert new["id"] in ids and old["id"] not in ids

    page = api.get("/locks", params={"package": "pure-dep", "version": "1.0"})
    assert page.status_code == 200
    assert f'id="lock-{old["id"][:12]}"' in page.text
    assert f'id="lock-{new["id"][:12]}"' not in page.text
    assert "from PyPI" in page.text
    # the listing counts each target's PyPI packages beside its conda ones
    row = page.text.split(f'id="lock-{old["id"][:12]}"', 1)[1].split("</tr>", 1)[0]
    conda = len(old["targets"]["linux-64"]["packages"])
    pypi = len(old["targets"]["linux-64"]["pypi_packages"])
    assert f"linux-64 ({conda} + {pypi} PyPI)" in row

    print_locks(found, "http://testserver")
    assert "pure-dep 1.0 (PyPI)" in capsys.readouterr().out


def test_search_by_conda_name_still_says_conda(
    api: InProcessClient, old_new: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    found = api.get("/api/v1/locks", params={"package": "python"}).json()
    assert found["items"]
    assert {m["source"] for item in found["items"] for m in item["matches"]} == {"conda"}


def test_lock_page_in_chromium(api: InProcessClient, mixed: dict[str, Any], tmp_path: Path) -> None:
    """The page as drawn, and the PyPI part of its linux-64 target alone (with the page's
    own styles, so the table is in view): saved to /tmp/pypi-page*.png for a look."""
    chromium = find_chromium()
    whole = page_text(api, mixed["id"])
    section = re.search(r'<h3 id="pypi-linux-64">.*?</section>', whole, re.S)
    assert section
    main = re.search(r"<main>.*</main>", whole, re.S)
    assert main
    only_target = whole[: main.start()] + f"<main>{section.group(0)}</main>" + whole[main.end() :]
    for name, text in (("page", whole), ("target", only_target)):
        (tmp_path / f"{name}.html").write_text(text)
    shots = {
        "pypi-page": ("page", 1280, 1600),
        "pypi-page-target": ("target", 1280, 500),
        "pypi-page-narrow": ("target", 390, 700),
    }
    for shot, (name, width, height) in shots.items():
        path = screenshot(chromium, tmp_path, f"file://{tmp_path}/{name}.html", shot, width, height)
        Path(f"/tmp/{shot}.png").write_bytes(path.read_bytes())
