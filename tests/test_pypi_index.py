"""The hermetic PyPI of tests/support/pypi_index.py is a real index: pip and uv use it.

Wheels are checked as installers check them (RECORD digests), the sdist's metadata is
static and its setup.py refuses to run, and the index answers PEP 503 HTML and PEP 691
JSON with PEP 700 fields, which pip and uv resolve against with hashes verified.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin

from tests.support.pypi_index import JSON_TYPE, PyPIIndex, wants_json

MANYLINUX = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
PLATFORM_TAGS = (
    MANYLINUX,
    "cp312-cp312-manylinux_2_28_x86_64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-win_amd64",
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    index = PyPIIndex(tmp_path_factory.mktemp("pypi"))
    index.add_wheel(
        "Fast_Thing", "1.0", tag=PLATFORM_TAGS[0], requires=["pure-dep>=1"],
        requires_python=">=3.9",
    )  # fmt: skip
    for tag in PLATFORM_TAGS[1:]:
        index.add_wheel("Fast_Thing", "1.0", tag=tag, requires=["pure-dep>=1"])
    index.add_wheel("pure-dep", "1.0", requires_python=">=3.8,<4")
    index.add_wheel("pure-dep", "2.0", upload_time=datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC))
    index.add_sdist("static-sdist", "1.0", requires=["pure-dep"])
    index.add_sdist("buildable-sdist", "1.0", buildable=True)
    with index.serving():
        yield index


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def isolated_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


@pytest.mark.parametrize("tag", ["py3-none-any", *PLATFORM_TAGS])
def test_wheels_are_real(index: PyPIIndex, tag: str) -> None:
    """RECORD lists every member with the urlsafe-b64 sha256 and size an installer checks."""
    name = "pure-dep" if tag == "py3-none-any" else "Fast_Thing"
    entry = next(f for f in index.files if f.name == name and f.filename.endswith(f"-{tag}.whl"))
    with zipfile.ZipFile(index.files_dir / entry.filename) as wheel:
        dist_info = f"{entry.filename.split('-')[0]}-{entry.version}.dist-info"
        record = wheel.read(f"{dist_info}/RECORD").decode().splitlines()
        assert sorted(line.split(",")[0] for line in record) == sorted(wheel.namelist())
        for line in record:
            path, digest, size = line.split(",")
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = wheel.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}" and int(size) == len(data)
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
        tags = [x for x in wheel.read(f"{dist_info}/WHEEL").decode().splitlines() if "Tag" in x]
    assert "Metadata-Version: 2.1" in metadata and f"Name: {name}" in metadata
    assert len(tags) == len(tag.split("-")[2].split("."))  # a compressed tag set expands
    assert entry.sha256 == sha256(index.files_dir / entry.filename)


def test_sdist_metadata_is_static_and_setup_py_refuses(index: PyPIIndex, tmp_path: Path) -> None:
    with tarfile.open(index.files_dir / "static_sdist-1.0.tar.gz") as sdist:
        sdist.extractall(tmp_path, filter="data")
    root = tmp_path / "static_sdist-1.0"
    pkg_info = (root / "PKG-INFO").read_text()
    assert "Metadata-Version: 2.2" in pkg_info and "Dynamic" not in pkg_info
    assert "Requires-Dist: pure-dep" in pkg_info
    assert tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"] == []
    ran = subprocess.run([sys.executable, "setup.py", "egg_info"], cwd=root, capture_output=True)
    assert ran.returncode != 0 and b"metadata is static" in ran.stderr


def test_pep503_html(index: PyPIIndex) -> None:
    root = httpx.get(f"{index.url}/")
    assert root.headers["content-type"].startswith("text/html")
    assert 'href="fast-thing/"' in root.text and 'href="pure-dep/"' in root.text
    # non-normalised names and a missing slash redirect to the normalised page
    page = httpx.get(f"{index.url}/Fast_Thing", follow_redirects=True)
    assert str(page.url).endswith("/simple/fast-thing/")
    for entry in index.project_files("fast-thing"):
        assert f"{index.file_url(entry.filename)}#sha256={entry.sha256}" in page.text
    assert 'data-requires-python="&gt;=3.9"' in page.text
    assert httpx.get(f"{index.url}/no-such/").status_code == 404


def test_pep691_json(index: PyPIIndex) -> None:
    headers = {"Accept": f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2"}
    root = httpx.get(f"{index.url}/", headers=headers)
    assert root.headers["content-type"] == JSON_TYPE
    assert root.json()["meta"] == {"api-version": "1.1"}
    assert {"name": "pure-dep"} in root.json()["projects"]

    page = httpx.get(f"{index.url}/pure-dep/", headers=headers).json()
    assert set(page) == {"meta", "name", "versions", "files"}
    assert page["name"] == "pure-dep" and page["versions"] == ["1.0", "2.0"]
    for item in page["files"]:
        assert set(item) >= {"filename", "url", "hashes", "size", "upload-time", "yanked"}
        body = httpx.get(item["url"]).content
        assert hashlib.sha256(body).hexdigest() == item["hashes"]["sha256"]
        assert len(body) == item["size"]
        assert item["upload-time"].endswith("Z")
        datetime.fromisoformat(item["upload-time"])  # PEP 700: ISO 8601
        metadata = httpx.get(item["url"] + ".metadata").content
        assert hashlib.sha256(metadata).hexdigest() == item["core-metadata"]["sha256"]
    newer = next(f for f in page["files"] if f["filename"].startswith("pure_dep-2.0"))
    assert newer["upload-time"] == "2025-03-04T05:06:07.000000Z"
    older = next(f for f in page["files"] if f["filename"].startswith("pure_dep-1.0"))
    assert older["requires-python"] == ">=3.8,<4"


def test_content_negotiation() -> None:
    assert wants_json(JSON_TYPE)
    assert not wants_json("text/html")
    assert not wants_json(f"{JSON_TYPE};q=0.1, text/html")
    assert not wants_json("")


@pytest.mark.parametrize(
    ("spec", "extra", "expected"),
    [
        ("pure-dep==1.0", [], "pure_dep-1.0-py3-none-any.whl"),
        (
            "fast-thing==1.0",
            [
                "--only-binary=:all:",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "312",
            ],
            f"fast_thing-1.0-{MANYLINUX}.whl",
        ),
        (
            "fast-thing==1.0",
            ["--only-binary=:all:", "--platform", "win_amd64", "--python-version", "312"],
            "fast_thing-1.0-cp312-cp312-win_amd64.whl",
        ),
        # pip prepares an sdist's metadata even for download: the in-tree backend runs
        ("buildable-sdist==1.0", [], "buildable_sdist-1.0.tar.gz"),
    ],
)
def test_pip_download(
    index: PyPIIndex, tmp_path: Path, spec: str, extra: list[str], expected: str
) -> None:
    """pip checks the `#sha256=` fragment of each link against what it downloads."""
    dest = tmp_path / "dest"
    ran = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
         "--index-url", f"{index.url}/", "--dest", str(dest), *extra, spec],
        capture_output=True, text=True, env=isolated_env(tmp_path), timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert [p.name for p in dest.iterdir()] == [expected]
    assert sha256(dest / expected) == index.file(expected).sha256


def test_uv_compile(index: PyPIIndex, tmp_path: Path) -> None:
    """uv reads the JSON API, picks the target's wheel and reports the index's hash."""
    ran = subprocess.run(
        [find_uv_bin(), "pip", "compile", "-", "--format", "pylock.toml", "--no-config",
         "--python-version", "3.12", "--python-platform", "x86_64-manylinux_2_28",
         "--python", sys.executable, "--no-python-downloads", "--index-url", index.url,
         "--cache-dir", str(tmp_path / "cache")],
        input="fast-thing\nstatic-sdist\n", capture_output=True, text=True,
        env=isolated_env(tmp_path), cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    packages = {p["name"]: p for p in tomllib.loads(ran.stdout)["packages"]}
    assert sorted(packages) == ["fast-thing", "pure-dep", "static-sdist"]
    files = [*packages["fast-thing"]["wheels"], *packages["pure-dep"]["wheels"]]
    files.append(packages["static-sdist"]["sdist"])
    for item in files:
        entry = index.file(item["url"].rsplit("/", 1)[-1])
        assert item["hashes"]["sha256"] == entry.sha256 and item["size"] == entry.size
    # every wheel the target can install is listed (not the macOS or Windows ones), and
    # the static sdist's metadata was read without a build (its backend would raise)
    listed = sorted(w["url"].rsplit("-", 1)[-1] for w in packages["fast-thing"]["wheels"])
    assert listed == ["manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "manylinux_2_28_x86_64.whl"]
    assert any(path.startswith("/simple/fast-thing") for path in index.requests)


def test_requests_recorded_faults_and_stop(tmp_path: Path) -> None:
    index = PyPIIndex(tmp_path)
    index.add_wheel("only", "1.0")
    url = index.start()
    try:
        assert httpx.get(f"{url}/only/").status_code == 200
        index.faults["/simple/"] = 403
        assert httpx.get(f"{url}/only/").status_code == 403
        assert index.requests == ["/simple/only/", "/simple/only/"]
    finally:
        index.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/only/")
    with pytest.raises(ValueError, match="already on the index"):
        index.add_wheel("only", "1.0")
    assert json.dumps(index.project_json("only"))  # pages still render from the files
