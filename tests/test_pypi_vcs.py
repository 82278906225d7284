"""VCS requirements and direct URLs in the `pip:` part of an environment, locked through the
API: a git repository served on 127.0.0.1 is pinned to the commit of its tag, archived as
a reproducible source archive into the blob store, and fetched only through the egress
proxy; a direct URL is fetched, hashed and recorded with its file's metadata."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.archive.blobs import FilesystemStore
from app.core.egress_proxy import EgressProxy
from app.solve.pypi import PyPIFailure, VcsSource, parse_pylock
from app.solve.pypi_lock import _proxies
from app.solve.pypi_vcs import make_source_archive
from tests.support.git_server import GitServer, make_project_repo
from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import PyPIWorld, lock_of, pypi_world, solve_job


@dataclass
class GitWorld:
    world: PyPIWorld
    git: GitServer  # allowed (CONDARCHIVE_ALLOWED_VCS)
    elsewhere: GitServer  # not allowed: only reachable by a redirect from `git`
    tags: dict[str, str]


@pytest.fixture(scope="module")
def gitworld(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitWorld]:
    root = tmp_path_factory.mktemp("vcs-world")
    _, tags = make_project_repo(
        root / "git", "gitpkg", [("1.0", "v1.0"), ("1.1", "v1.1")], requires=["pure-dep<2"]
    )
    make_project_repo(root / "elsewhere", "gitpkg", [("1.0", "v1.0")])
    with (
        pypi_world(root / "world") as world,
        GitServer(root / "git").serving() as git,
        GitServer(root / "elsewhere").serving() as elsewhere,
    ):
        git.redirects["/moved.git"] = f"{elsewhere.url}/gitpkg.git"
        yield GitWorld(world, git, elsewhere, tags)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, gitworld: GitWorld
) -> Iterator[InProcessService]:
    world = gitworld.world
    service = InProcessService(
        tmp_path_factory.mktemp("vcs-service"),
        world.channels.url,
        **world.settings(),
        allowed_vcs=gitworld.git.host,
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def api(service: InProcessService) -> Iterator[InProcessClient]:
    with service.client() as http:
        yield http


def pypi_of(lock: dict[str, Any], target: str = "linux-64") -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in lock["targets"][target]["pypi_packages"]}


def test_git_requirement_is_pinned_to_its_commit_and_archived(
    api: InProcessClient, service: InProcessService, gitworld: GitWorld
) -> None:
    repo = gitworld.git.repo_url("gitpkg")
    environment = gitworld.world.environment(f"-e git+{repo}@v1.0#egg=gitpkg")
    lock = lock_of(api, {"environment": environment, "targets": ["linux-64", "osx-arm64"]})
    commit = gitworld.tags["v1.0"]
    linux, mac = pypi_of(lock, "linux-64"), pypi_of(lock, "osx-arm64")
    assert set(linux) == {"gitpkg", "pure-dep"}
    assert linux["pure-dep"]["version"] == "1.0"  # gitpkg 1.0 asks for pure-dep<2
    package = linux["gitpkg"]
    assert package == mac["gitpkg"]  # one archive of the commit, whatever the target
    assert package["kind"] == "vcs"
    assert package["version"] == "1.0"
    assert package["vcs"] == {
        "type": "git",
        "url": repo,
        "requested_revision": "v1.0",
        "commit": commit,
    }
    assert package["url"] == f"git+{repo}@{commit}"
    assert package["filename"] == "gitpkg-1.0.tar.gz"
    assert package["requires"] == ["pure-dep<2"]
    assert package["index"] is None

    # the archive is in the blob store, named by its sha256, as the lock says
    store = FilesystemStore(service.data_dir / "blobs")
    path = store.local_path(package["sha256"])
    assert path is not None, "the source archive was not stored"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == package["sha256"]
    assert len(data) == package["size"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = archive.getnames()
        version_file = archive.extractfile("gitpkg-1.0/gitpkg/__init__.py")
        assert version_file is not None and b'"1.0"' in version_file.read()
    assert "gitpkg-1.0/pyproject.toml" in names
    assert all(name.startswith("gitpkg-1.0") for name in names)
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0

    # git fetched from the allowed server only, through the proxy (which admits it)
    assert any(p.startswith("/gitpkg.git/") for p in gitworld.git.requests)


def test_the_source_archive_is_reproducible(tmp_path: Path, gitworld: GitWorld) -> None:
    source = VcsSource("git", gitworld.git.repo_url("gitpkg"), gitworld.tags["v1.1"], "v1.1")
    made = []
    for name in ("first", "second"):
        store = FilesystemStore(tmp_path / name)
        made.append(make_source_archive(source, "gitpkg", "1.1", store, None, 60.0))
        stored = store.local_path(made[-1].sha256)
        assert stored is not None and stored.stat().st_size == made[-1].size
    assert made[0] == made[1]
    assert made[0].filename == "gitpkg-1.1.tar.gz"


def test_locking_twice_gives_the_same_archive(
    tmp_path: Path, api: InProcessClient, gitworld: GitWorld
) -> None:
    """A second service (another data dir, another uv cache) locks the same bytes."""
    world = gitworld.world
    repo = gitworld.git.repo_url("gitpkg")
    body = {
        "channels": [world.channel_url],
        "dependencies": ["python=3.12"],
        "pypi_dependencies": [f"gitpkg @ git+{repo}@v1.1"],
        "pypi_indexes": [world.index.url],
        "targets": ["linux-64"],
    }
    first = pypi_of(lock_of(api, body))["gitpkg"]
    other = InProcessService(
        tmp_path / "other", world.channels.url, **world.settings(), allowed_vcs=gitworld.git.host
    )
    try:
        with other.client() as http:
            second = pypi_of(lock_of(http, body))["gitpkg"]
    finally:
        other.close()  # the module's client activates its own service again
    assert first["vcs"]["commit"] == second["vcs"]["commit"] == gitworld.tags["v1.1"]
    assert first["sha256"] == second["sha256"]
    assert first["size"] == second["size"]
    assert first["version"] == "1.1"


def test_the_archivers_git_goes_through_the_proxy(tmp_path: Path, gitworld: GitWorld) -> None:
    """A proxy whose allowlist lacks the git server refuses it: git asked the proxy."""
    index_only = gitworld.world.index.base_url + "/simple"
    proxy = EgressProxy(lambda: ([index_only], "https://invalid.invalid"))
    try:
        source = VcsSource("git", gitworld.git.repo_url("gitpkg"), gitworld.tags["v1.0"], "v1.0")
        before = len(gitworld.git.requests)
        with pytest.raises(PyPIFailure, match="could not fetch commit"):
            make_source_archive(source, "gitpkg", "1.0", FilesystemStore(tmp_path), proxy.url, 60)
        assert len(gitworld.git.requests) == before
        assert any(r.url.startswith(gitworld.git.url) for r in proxy.refusals)
    finally:
        proxy.close()


def test_a_redirect_to_a_host_not_allowed_is_refused_by_the_proxy(
    tmp_path: Path, api: InProcessClient, gitworld: GitWorld
) -> None:
    moved = f"{gitworld.git.url}/moved.git"
    # without the proxy, git follows the redirect (so the test can tell the difference)
    source = VcsSource("git", moved, gitworld.tags["v1.0"], "v1.0")
    before = len(gitworld.elsewhere.requests)
    with pytest.raises(PyPIFailure):
        # the other repository has another commit for v1.0, so the one asked is not there
        make_source_archive(source, "gitpkg", "1.0", FilesystemStore(tmp_path), None, 60.0)
    assert len(gitworld.elsewhere.requests) > before

    before = len(gitworld.elsewhere.requests)
    environment = gitworld.world.environment(f"git+{moved}@v1.0#egg=gitpkg")
    job = solve_job(api, {"environment": environment, "targets": ["linux-64"]})
    assert job["status"] == "failed"
    assert job["error"]["kind"] in ("index", "resolver"), job["error"]
    assert len(gitworld.elsewhere.requests) == before, "git reached a host not allowed"
    refused = [r.url for proxy in _proxies.values() for r in proxy.refusals]
    assert any(url.startswith(gitworld.elsewhere.url) for url in refused), refused


def test_a_git_host_not_allowed_is_a_422(api: InProcessClient, gitworld: GitWorld) -> None:
    environment = gitworld.world.environment(
        f"git+{gitworld.elsewhere.repo_url('gitpkg')}@v1.0#egg=gitpkg"
    )
    response = api.post("/api/v1/solves", json={"environment": environment})
    assert response.status_code == 422
    assert "CONDARCHIVE_ALLOWED_VCS" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_direct_url_is_fetched_and_hashed(
    api: InProcessClient, gitworld: GitWorld, kind: str
) -> None:
    index = gitworld.world.index
    name = f"direct-{kind}"
    if not any(f.name == name for f in index.files):
        if kind == "wheel":
            index.add_wheel(name, "1.0", requires=["pure-dep>=1"], requires_python=">=3.8")
        else:
            index.add_sdist(name, "1.0", requires=["pure-dep>=1"], requires_python=">=3.8")
    file = next(f for f in index.files if f.name == name)
    url = index.file_url(file.filename)
    lock = lock_of(
        api, {"environment": gitworld.world.environment(f"{name} @ {url}"), "targets": ["win-64"]}
    )
    package = pypi_of(lock, "win-64")[name]
    assert package["kind"] == "url"
    assert package["url"] == url
    assert package["filename"] == file.filename
    assert package["sha256"] == file.sha256
    assert package["size"] == file.size
    assert package["version"] == "1.0"
    assert package["requires"] == ["pure-dep>=1"]
    assert package["requires_python"] == ">=3.8"
    assert package["vcs"] is None


def test_parse_pylock_reads_vcs_and_archive_entries() -> None:
    commit = "a" * 40
    text = f"""
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "gitpkg"
version = "1.0"
vcs = {{ type = "git", url = "https://example.org/r.git", requested-revision = "v1", \
commit-id = "{commit}" }}

[[packages]]
name = "nover"
vcs = {{ type = "git", url = "https://example.org/n.git", commit-id = "{commit}" }}

[[packages]]
name = "direct"
version = "2.0"
archive = {{ url = "https://example.org/d/direct-2.0.tar.gz", \
hashes = {{ sha256 = "{"b" * 64}" }} }}
"""
    packages = {p.name: p for p in parse_pylock(text)}
    assert packages["gitpkg"].kind == "vcs"
    assert packages["gitpkg"].vcs == VcsSource("git", "https://example.org/r.git", commit, "v1")
    assert packages["nover"].version == f"0+g{commit[:12]}"
    assert packages["nover"].vcs is not None and packages["nover"].vcs.requested_revision is None
    direct = packages["direct"]
    assert (direct.kind, direct.filename, direct.sha256, direct.size) == (
        "url",
        "direct-2.0.tar.gz",
        "b" * 64,
        None,
    )


def test_a_project_in_a_subdirectory_of_a_repository(
    api: InProcessClient, service: InProcessService, gitworld: GitWorld
) -> None:
    """`#subdirectory=` (a monorepo): the lock records it, the archive holds that folder."""
    from tests.support.git_server import git, project_files

    root = gitworld.git.root
    work = root / "mono-work"
    (work / "libs" / "subpkg").mkdir(parents=True)
    (work / "README").write_text("a repository of several projects\n")
    for path, text in project_files("subpkg", "3.0").items():
        target = work / "libs" / "subpkg" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "mono", cwd=work)
    git("tag", "-a", "v3", "-m", "v3", cwd=work)
    git("clone", "-q", "--bare", str(work), str(root / "mono.git"), cwd=root)
    git("update-server-info", cwd=root / "mono.git")
    repo = gitworld.git.repo_url("mono")
    line = f"git+{repo}@v3#egg=subpkg&subdirectory=libs/subpkg"
    lock = lock_of(api, {"environment": gitworld.world.environment(line), "targets": ["linux-64"]})
    package = pypi_of(lock)["subpkg"]
    assert package["kind"] == "vcs" and package["version"] == "3.0"
    assert package["url"].endswith("#subdirectory=libs/subpkg")
    path = FilesystemStore(service.data_dir / "blobs").local_path(package["sha256"])
    assert path is not None
    with tarfile.open(path, mode="r:gz") as archive:
        names = archive.getnames()
    assert "subpkg-3.0/pyproject.toml" in names
    assert not any(name.endswith("README") for name in names)  # only the subdirectory
