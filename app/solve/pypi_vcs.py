"""A VCS requirement's commit as a source archive, so it installs after the repository is gone.

uv resolves ``git+https://host/org/repo.git@ref`` to one commit (pylock.toml's ``vcs``
table); this module fetches that commit again with git and writes
``git archive --format=tar --prefix=<dist>-<version>/ <commit>`` through gzip into the
blob store, where the archive serves it from (no downloader can fetch a git URL).

The bytes are reproducible: git's tar output depends only on the commit (its tree, and
its committer time as every entry's mtime), and gzip runs with mtime 0, no file name and
level 9. ``export-subst`` and ``export-ignore`` attributes apply, as in any release
tarball made by ``git archive``; refs never appear (the throwaway repository has only
``FETCH_HEAD``), so a ``$Format:%d$`` reads the same however the commit was fetched.

git is untrusted I/O, as uv's builds are: it runs in a throwaway directory, with an
environment built from nothing (:data:`app.solve.pypi.GIT_ENV`: no configuration, no
prompt, only http(s) transports; submodules are not fetched) plus the egress proxy, which
admits only the allowed VCS hosts (a redirect elsewhere is refused there), in its own
process group, killed at the deadline. Submodules are not part of ``git archive``'s
output, so a repository that needs them does not install from the archive.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import signal
import subprocess
import tempfile
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.archive.blobs import BlobStore, BlobWriter, Expected
from app.solve.pypi import GIT_ENV, PyPIFailure, VcsSource, trust_environment

#: Bytes of one source archive at most (compressed).
MAX_ARCHIVE = 2 << 30
CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceArchive:
    """A commit's source archive, stored in the blob store under ``sha256``."""

    filename: str
    sha256: str
    size: int
    #: From the commit's pyproject.toml ``[project]`` where it is static, else None / ().
    requires_python: str | None
    requires: tuple[str, ...]


def dist_name(name: str) -> str:
    """The distribution part of a file name (``Foo.Bar-baz`` -> ``foo_bar_baz``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def archive_name(name: str, version: str) -> tuple[str, str]:
    """(filename, tar prefix): ``<dist>-<version>.tar.gz`` and ``<dist>-<version>/``.

    The version is the one the package's metadata declares (uv's), with no ``+g<commit>``
    added: pip and uv refuse a source archive whose file name's version differs from
    its metadata's. The commit is in the lock's ``vcs`` table and in ``url``.
    """
    stem = f"{dist_name(name)}-{version}"
    return f"{stem}.tar.gz", f"{stem}/"


def make_source_archive(
    source: VcsSource,
    name: str,
    version: str,
    store: BlobStore,
    proxy_url: str | None,
    timeout: float,
    path: str = os.defpath,
    trust: Mapping[str, str] | None = None,
) -> SourceArchive:
    """Fetch ``source.commit`` from ``source.url`` and store its archive; or PyPIFailure."""
    if source.type != "git":
        raise PyPIFailure("resolver", f"{name}: only git repositories can be archived")
    filename, prefix = archive_name(name, version)
    with tempfile.TemporaryDirectory(prefix="condarchive-vcs-") as temp:
        scratch = Path(temp)
        (scratch / "home").mkdir()
        repo = scratch / "repo"
        repo.mkdir()
        if trust is None:  # which CA certificates to trust, as uv's (PyPIRequest.trust)
            trust = trust_environment(os.environ)
        env = git_environment(scratch, proxy_url, path, trust)
        git = GitRunner(repo, env, timeout)
        git.run("init", "-q")
        fetch_commit(git, source)
        treeish = source.commit
        if source.subdirectory:
            treeish = f"{source.commit}:{source.subdirectory.strip('/')}"
        with store.writer() as writer:
            git.archive(treeish, prefix, writer)
            info, _created = store.put_from_tempfile(writer, Expected(None, None, None))
        requires_python, requires = static_metadata(git, treeish)
    return SourceArchive(filename, info.sha256, info.size, requires_python, requires)


def git_environment(
    scratch: Path, proxy_url: str | None, path: str, trust: Mapping[str, str]
) -> dict[str, str]:
    """Everything git sees: built from nothing, never copied from this process."""
    env = {
        "PATH": path,
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch),
        "LC_ALL": "C",
        **GIT_ENV,
        **trust,
    }
    if proxy_url:
        for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env[name] = proxy_url
    return env


def fetch_commit(git: GitRunner, source: VcsSource) -> None:
    """The commit, fetched as cheaply as the server allows, into FETCH_HEAD only."""
    # Every URL and ref after `--end-of-options`: a ref like `--upload-pack=…` stays a ref.
    attempts = [
        ["--depth", "1", "--end-of-options", source.url, source.commit],  # smart HTTP
        ["--end-of-options", source.url, source.commit],  # dumb HTTP: no shallow fetches
    ]
    if source.requested_revision:  # a server that gives no unadvertised commit
        attempts.append(["--end-of-options", source.url, source.requested_revision])
    attempts.append(
        [
            "--end-of-options",
            source.url,
            "+refs/heads/*:refs/fetched/heads/*",
            "+refs/tags/*:refs/fetched/tags/*",
        ]
    )
    errors = []
    for arguments in attempts:
        result = git.run(
            "fetch", "-q", "--no-tags", "--no-recurse-submodules", *arguments, check=False
        )
        if git.has_commit(source.commit):
            git.drop_refs()
            return
        errors.append(result.stderr.strip().splitlines()[-1:] or ["(no message)"])
    raise PyPIFailure(
        "index",
        f"{source.url}: could not fetch commit {source.commit}: {errors[-1][0] if errors else ''}",
    )


def static_metadata(git: GitRunner, treeish: str) -> tuple[str | None, tuple[str, ...]]:
    """requires-python and dependencies from pyproject.toml, where they are not dynamic."""
    where = f"{treeish}/pyproject.toml" if ":" in treeish else f"{treeish}:pyproject.toml"
    result = git.run("show", where, check=False)
    if result.returncode != 0:
        return None, ()
    try:
        project = tomllib.loads(result.stdout).get("project") or {}
    except tomllib.TOMLDecodeError:
        return None, ()
    dynamic = set(project.get("dynamic") or ())
    requires_python = project.get("requires-python") if "requires-python" not in dynamic else None
    requires = (project.get("dependencies") or []) if "dependencies" not in dynamic else []
    if not isinstance(requires_python, str):
        requires_python = None
    return requires_python, tuple(str(r) for r in requires if isinstance(r, str))


class GitRunner:
    """git in one repository, each command in its own process group, killed at the deadline."""

    def __init__(self, repo: Path, env: dict[str, str], timeout: float) -> None:
        self.repo = repo
        self.env = env
        self.timeout = timeout

    def command(self, *args: str) -> list[str]:
        # no hooks, no fsmonitor; and only http(s) transports (GIT_ENV)
        return ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        process = subprocess.Popen(
            self.command(*args),
            cwd=self.repo,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise PyPIFailure(
                "timeout", f"git {args[0]} did not finish within {self.timeout:g} s"
            ) from None
        finally:
            if process.poll() is None:
                _kill(process)
        result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
        if check and process.returncode != 0:
            raise PyPIFailure("resolver", f"git {args[0]} failed: {stderr.strip()}")
        return result

    def has_commit(self, commit: str) -> bool:
        return self.run("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0

    def drop_refs(self) -> None:
        """Delete every ref a fallback fetch made, so ``export-subst`` cannot see them."""
        refs = self.run("for-each-ref", "--format=delete %(refname)").stdout
        if refs.strip():
            process = subprocess.run(
                self.command("update-ref", "--stdin"),
                cwd=self.repo,
                env=self.env,
                input=refs,
                text=True,
                capture_output=True,
                timeout=self.timeout,
            )
            if process.returncode != 0:
                raise PyPIFailure("resolver", f"git update-ref failed: {process.stderr.strip()}")

    def archive(self, treeish: str, prefix: str, writer: BlobWriter) -> None:
        """``git archive --format=tar`` gzipped (mtime 0, no name, level 9) into `writer`."""
        process = subprocess.Popen(
            self.command("archive", "--format=tar", f"--prefix={prefix}", treeish),
            cwd=self.repo,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def deadline() -> None:
            timed_out.set()
            _kill(process)

        timer = threading.Timer(self.timeout, deadline)
        timer.start()
        assert process.stdout is not None and process.stderr is not None
        try:
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=writer, compresslevel=9, mtime=0
            ) as out:  # type: ignore[arg-type]
                while chunk := process.stdout.read(CHUNK):
                    out.write(chunk)
                    if writer.size > MAX_ARCHIVE:
                        _kill(process)
                        raise PyPIFailure(
                            "resolver", f"{treeish}: the source archive exceeds {MAX_ARCHIVE} bytes"
                        )
            stderr = process.stderr.read().decode("utf-8", "replace")
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                _kill(process)
        if timed_out.is_set():
            raise PyPIFailure("timeout", f"git archive did not finish within {self.timeout:g} s")
        if process.returncode != 0:
            raise PyPIFailure("resolver", f"git archive {treeish} failed: {stderr.strip()}")


def _kill(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait(timeout=5)
