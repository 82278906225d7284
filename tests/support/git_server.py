"""Git repositories of small Python projects, served over dumb HTTP on 127.0.0.1.

:func:`make_project_repo` commits a project whose ``pyproject.toml`` names an in-tree
build backend (``backend-path = ["."]``, ``requires = []``, the backend of
tests/support/pypi_index.py with ``buildable=True``): uv must build a git dependency to
read its metadata, and offline no setuptools or hatchling can come from an index.
Commits have fixed authors and dates, so the same inputs give the same commit ids.

:class:`GitServer` serves bare repositories as git's *dumb* HTTP protocol (static files
after ``git update-server-info``), which every git client speaks, records each request,
and can answer chosen paths with a redirect (to show a redirect to a host that is not
allowed is refused by the egress proxy).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.pypi_index import _BACKEND, _PYPROJECT, core_metadata, dist_name

#: Fixed identity and time of every test commit.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(cwd), **_GIT_ENV}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def project_files(name: str, version: str, requires: Sequence[str] = ()) -> dict[str, str]:
    """A buildable project: static ``[project]`` metadata, the same in PKG-INFO (what the
    in-tree backend reports), and code."""
    dist = dist_name(name)
    backend = _BACKEND % {"buildable": True, "record": None, "dist": dist, "version": version}
    project = (
        f'\n[project]\nname = "{name}"\nversion = "{version}"\n'
        f"dependencies = {json.dumps(list(requires))}\n"
    )
    return {
        "pyproject.toml": _PYPROJECT + project,
        "condarchive_test_backend.py": backend,
        "PKG-INFO": core_metadata(name, version, requires, None, {}, "2.2").decode(),
        f"{dist}/__init__.py": f'__version__ = "{version}"\n',
    }


def make_project_repo(
    root: Path,
    name: str,
    versions: Sequence[tuple[str, str]] = (("1.0", "v1.0"),),
    requires: Sequence[str] = (),
) -> tuple[Path, dict[str, str]]:
    """A bare repository ``root/<name>.git`` with one commit per (version, tag), served
    by :class:`GitServer` at ``/<name>.git``; returns it and {tag: commit id}."""
    work = root / f"{name}-work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    tags = {}
    for version, tag in versions:
        for path, text in project_files(name, version, requires).items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"{name} {version}", cwd=work)
        git("tag", "-a", tag, "-m", f"release {version}", cwd=work)
        tags[tag] = git("rev-parse", "HEAD", cwd=work)
    bare = root / f"{name}.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    git("update-server-info", cwd=bare)
    return bare, tags


class GitServer:
    """Serve ``root`` (holding bare repositories) as static files: git's dumb HTTP."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self.requests: list[str] = []  # request paths, in order
        self.redirects: dict[str, str] = {}  # path prefix -> URL prefix to redirect to
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """What CONDARCHIVE_ALLOWED_VCS names to allow this server."""
        return f"127.0.0.1:{self.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def start(self) -> GitServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def serving(self) -> Iterator[GitServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _handler_for(server: GitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlsplit(self.path).path)
            with server._lock:
                server.requests.append(path)
            for prefix, target in server.redirects.items():
                if path.startswith(prefix):
                    location = target + path[len(prefix) :]
                    if urlsplit(self.path).query:
                        location += f"?{urlsplit(self.path).query}"
                    return self._send(302, b"", {"Location": location})
            file = (server.root / path.lstrip("/")).resolve()
            if server.root.resolve() not in file.parents or not file.is_file():
                return self._send(404, b"not found\n", {"Content-Type": "text/plain"})
            self._send(200, file.read_bytes(), {"Content-Type": "application/octet-stream"})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
