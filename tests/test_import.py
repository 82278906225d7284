"""POST /api/v1/locks/import: existing lockfiles in, verified against their channels, locks out."""

from __future__ import annotations

import httpx
import pytest

from tests.support.solving import solve_lock

TARGETS = ["linux-64", "osx-arm64"]


@pytest.fixture(scope="module")
def http(api: httpx.Client) -> httpx.Client:
    """The in-process service (tests/support/inprocess.py)."""
    return api


@pytest.fixture(scope="module")
def lock_id(http: httpx.Client, channel_url: str) -> str:
    return solve_lock(http, channel_url, ["numlib>=1.26", "pyutil", "fftlike"], TARGETS)


@pytest.fixture(scope="module")
def cuda_lock_id(http: httpx.Client, channel_url: str) -> str:
    return solve_lock(
        http, channel_url, ["numlib>=1.26", "torchlike"], ["linux-64", "linux-64-cuda12"]
    )


def explicit(http: httpx.Client, lock_id: str, target: str) -> str:
    response = http.get(f"/l/{lock_id}/explicit/{target}.txt")
    assert response.status_code == 200
    return response.text


def conda_list_explicit(text: str) -> str:
    """The same environment as `conda list --explicit --md5` prints it: no extra comments."""
    urls = [line for line in text.splitlines() if line.startswith("http")]
    return "# platform: linux-64\n@EXPLICIT\n" + "\n".join(urls) + "\n"


def post(http: httpx.Client, content: str, **fields: str) -> httpx.Response:
    return http.post("/api/v1/locks/import", json={"content": content, **fields})


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_explicit_round_trip_keeps_urls_and_hashes(http: httpx.Client, lock_id: str) -> None:
    original = explicit(http, lock_id, "linux-64")
    response = post(http, conda_list_explicit(original))
    assert response.status_code in (200, 201), response.text
    imported = response.json()
    assert imported["format"] == "explicit"
    assert imported["targets"] == {"linux-64": 4}
    assert imported["links"]["permalink"].endswith(f"/l/{imported['lock_id']}")
    assert response.headers["location"] == f"/api/v1/locks/{imported['lock_id']}"

    again = explicit(http, imported["lock_id"], "linux-64")
    urls = [line for line in original.splitlines() if line.startswith(("http", "# sha256:"))]
    assert [line for line in again.splitlines() if line.startswith(("http", "# sha256:"))] == urls

    lock = http.get(f"/api/v1/locks/{imported['lock_id']}").json()
    solved = http.get(f"/api/v1/locks/{lock_id}").json()
    assert lock["targets"]["linux-64"]["packages"] == solved["targets"]["linux-64"]["packages"]
    assert lock["targets"]["linux-64"]["virtual_packages"] == []  # the file states none
    assert lock["provenance"]["imported"]["format"] == "explicit"
    assert lock["provenance"]["hashes_checked"] == {"md5": 4, "sha256": 0}
    # What was submitted is kept with the request (the import), not with the lock.
    asked = http.get(f"/api/v1/locks/{imported['lock_id']}/requests").json()["items"]
    assert {"kind": "import", "content": conda_list_explicit(original)} in [
        {"kind": r["kind"], "content": r["submitted"].get("content")} for r in asked
    ]
    page = http.get(f"/l/{imported['lock_id']}").text
    assert "Imported, not solved: this explicit file" in page


def test_our_own_explicit_file_imports_as_the_same_lock(
    http: httpx.Client, channel_url: str
) -> None:
    """Its comments name the target and its virtual packages, so nothing is lost."""
    cuda_only = solve_lock(http, channel_url, ["numlib>=1.26", "torchlike"], ["linux-64-cuda12"])
    text = explicit(http, cuda_only, "linux-64-cuda12")
    response = post(http, text)
    assert response.status_code == 200, response.text  # the lock already exists
    assert response.json()["created"] is False
    assert response.json()["lock_id"] == cuda_only
    lock = http.get(f"/api/v1/locks/{response.json()['lock_id']}").json()
    assert list(lock["targets"]) == ["linux-64-cuda12"]
    assert "__cuda=12=0" in lock["targets"]["linux-64-cuda12"]["virtual_packages"]
    assert "solver" in lock["provenance"]  # written once: the solve's provenance stays


def test_tampered_md5_is_refused_naming_the_line(http: httpx.Client, lock_id: str) -> None:
    text = conda_list_explicit(explicit(http, lock_id, "linux-64"))
    line = next(ln for ln in text.splitlines() if "/numlib-" in ln)
    url, md5 = line.split("#")
    tampered = text.replace(line, f"{url}#{'0' * 32}")
    response = post(http, tampered)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    number = line_of(tampered, "/numlib-")
    assert error["line"] == number
    assert error["msg"].startswith(f"line {number}: md5 of numlib-")
    assert md5 in error["msg"] and "0" * 32 in error["msg"]
    assert error["loc"] == ["body", "content"]


def test_tampered_sha256_fragment_is_refused(http: httpx.Client, lock_id: str) -> None:
    text = conda_list_explicit(explicit(http, lock_id, "linux-64"))
    line = next(ln for ln in text.splitlines() if "/pyutil-" in ln)
    tampered = text.replace(line, line.split("#")[0] + "#sha256:" + "f" * 64)
    error = post(http, tampered).json()["detail"][0]
    assert error["line"] == line_of(tampered, "/pyutil-") and "sha256 of pyutil-" in error["msg"]


def test_unknown_and_unallowed_urls_are_refused_naming_each_line(
    http: httpx.Client, channel_url: str
) -> None:
    text = (
        "# platform: linux-64\n@EXPLICIT\n"
        f"{channel_url}/linux-64/numlib-9.9-h1_0.conda\n"
        f"{channel_url}/noarch/pyutil-1.0-pyh_0.conda\n"
    )
    response = post(http, text)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["line"] == 3 and "numlib-9.9-h1_0.conda is not in" in error["msg"]

    elsewhere = text + "https://example.com/chan/linux-64/evil-1.0-0.conda\n"
    errors = post(http, elsewhere).json()["detail"]
    assert [e["line"] for e in errors] == [5]  # the allowlist is checked before any fetch
    assert "CONDARCHIVE_ALLOWED_CHANNELS" in errors[0]["msg"]


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ("hello world\n", {}, "cannot tell the format"),
        ("@EXPLICIT\nhttps://x.org/c/linux-64/a-1-0.conda#zz\n", {}, "line 2: '#zz'"),
        ("@EXPLICIT\nftp://x.org/c/linux-64/a-1-0.conda\n", {}, "line 2: 'ftp://"),
        ("@EXPLICIT\nhttps://x.org/c/linux-64/a-1-0.zip\n", {}, "not a .conda or .tar.bz2"),
        ("numpy=1.26\n@EXPLICIT\n", {}, "line 1: 'numpy=1.26' comes before"),
        ("@EXPLICIT\n", {}, "lists no package URLs"),
        ("@EXPLICIT\nhttps://x.org/c/noarch/a-1-0.conda\n", {}, "cannot tell the platform"),
        ("# platform: plan9\n@EXPLICIT\nhttps://x.org/c/noarch/a-1-0.conda\n", {}, "plan9"),
        ("@EXPLICIT\nhttps://x.org/c/linux-64/a-1-0.conda\n", {"format": "pixi"}, "pixi.lock"),
        ("version: 2\nmetadata: {}\npackage: []\n", {}, "version 1"),
    ],
)
def test_malformed_files_get_422_naming_the_problem(
    http: httpx.Client, content: str, fields: dict[str, str], message: str
) -> None:
    response = post(http, content, **fields)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"][0]["msg"]


def test_explicit_platform_can_be_given(http: httpx.Client, channel_url: str) -> None:
    text = f"@EXPLICIT\n{channel_url}/noarch/pyutil-1.0-pyh_0.conda\n"
    response = post(http, text, platform="osx-arm64")
    assert response.status_code in (200, 201), response.text
    assert response.json()["targets"] == {"osx-arm64": 1}


def test_conda_lock_round_trip(http: httpx.Client, lock_id: str) -> None:
    text = http.get(f"/l/{lock_id}/conda-lock.yml").text
    response = post(http, text)
    assert response.status_code == 200, response.text
    assert response.json() | {"links": None} == {
        "lock_id": lock_id,
        "created": False,
        "format": "conda-lock",
        "targets": {"linux-64": 4, "osx-arm64": 4},
        "links": None,
    }
    lines = text.splitlines()
    entry = lines.index("package:") + 1  # the "- name:" line of the first package, 0-based
    sha = next(n for n in range(entry, len(lines)) if "sha256:" in lines[n])
    lines[sha] = lines[sha].split(":")[0] + ": " + "e" * 64
    tampered = "\n".join(lines) + "\n"
    [error] = post(http, tampered).json()["detail"]
    assert error["line"] == entry + 1 and "sha256 of" in error["msg"]


def test_pixi_round_trip(http: httpx.Client, cuda_lock_id: str) -> None:
    text = http.get(f"/l/{cuda_lock_id}/pixi.lock").text
    response = post(http, text)
    assert response.status_code == 200, response.text
    assert response.json()["lock_id"] == cuda_lock_id
    assert response.json()["format"] == "pixi"
    md5_line = next(ln for ln in text.splitlines() if ln.strip().startswith("md5:"))
    tampered = text.replace(md5_line, md5_line.split(":")[0] + ": " + "a" * 32, 1)
    errors = post(http, tampered).json()["detail"]
    lines = tampered.splitlines()
    md5_at = line_of(tampered, "a" * 32)
    entry = max(n for n in range(1, md5_at) if lines[n - 1].startswith("- conda:"))
    assert errors and all(e["line"] == entry for e in errors)  # the package's "- conda:" line
    assert all("md5 of" in e["msg"] for e in errors)


def test_import_is_not_taken_for_a_lock_id(http: httpx.Client) -> None:
    response = http.get("/api/v1/locks/import")
    assert response.status_code == 404
    wrong = http.post("/api/v1/locks/import", json={"content": ""})
    assert wrong.status_code == 422
