"""A hermetic PyPI for tests: real wheels and sdists, served on 127.0.0.1.

Distributions are built with the standard library only, so they are what pip and uv
meet on the real index:

* a **wheel** is a zip with ``{name}/__init__.py`` and a ``.dist-info`` holding
  ``METADATA`` (Metadata-Version 2.1), ``WHEEL`` (one ``Tag:`` line per expanded tag) and
  a ``RECORD`` whose digests are urlsafe-base64 sha256, as installers check them; any tag
  works, pure (``py3-none-any``) or platform (``cp312-cp312-manylinux_2_28_x86_64``,
  ``cp312-cp312-macosx_11_0_arm64``, ``cp312-cp312-win_amd64``, compressed tag sets).
* an **sdist** is a ``.tar.gz`` whose metadata is *static* by default: ``PKG-INFO`` with
  Metadata-Version 2.2 and no ``Dynamic:`` field, which a resolver may read without
  building (PEP 643). Building is hard offline (setuptools would come from an index), so
  the sdist's ``pyproject.toml`` names an in-tree backend (``backend-path = ["."]``,
  ``requires = []``) that needs nothing from the network, and a ``setup.py`` that raises
  if run. By default the backend raises too, so a resolution that succeeds proves no
  build was needed; ``dynamic=True`` declares ``Dynamic: Requires-Dist`` so a resolver
  must build, ``buildable=True`` makes the backend build a real pure wheel, and
  ``build_record=path`` makes every backend hook write its environment and working
  directory to ``path`` as JSON first (what the build ran with, for isolation tests).

:class:`PyPIIndex` serves them as a PEP 503 simple index (HTML, with ``#sha256=``
fragments, ``data-requires-python`` and PEP 714 ``data-core-metadata``) and as PEP 691
JSON (``Accept: application/vnd.pypi.simple.v1+json``, api-version 1.1 with the PEP 700
``versions``, ``size`` and ``upload-time``), plus the files and their PEP 658
``.metadata``. It records every request path, and can answer chosen paths with an error
status, so tests can show an index was never contacted, or refused.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
#: Upload time of files added without one.
DEFAULT_UPLOAD_TIME = datetime(2024, 1, 1, tzinfo=UTC)
#: zip and tar entries get this fixed time, so the same inputs give the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name: str) -> str:
    """The name as it appears in file names (wheel spec: runs of ``-_.`` become ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def expand_tags(tag: str) -> list[str]:
    """``cp312-cp312-a.b`` -> ``cp312-cp312-a``, ``cp312-cp312-b`` (compressed tag sets)."""
    python, abi, platform = tag.split("-")
    return [
        f"{p}-{a}-{x}"
        for p in python.split(".")
        for a in abi.split(".")
        for x in platform.split(".")
    ]


@dataclass(frozen=True)
class IndexFile:
    """One file on the index, as its project page describes it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str | None
    metadata: bytes  # the core metadata (served as ``{filename}.metadata``, PEP 658)

    @property
    def project(self) -> str:
        return normalize(self.name)


def core_metadata(
    name: str,
    version: str,
    requires: Sequence[str],
    requires_python: str | None,
    extras: Mapping[str, Sequence[str]],
    metadata_version: str = "2.1",
    dynamic: Sequence[str] = (),
) -> bytes:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    lines += [f"Dynamic: {field}" for field in dynamic]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires]
    for extra, extra_requires in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        for req in extra_requires:
            marker = f'extra == "{extra}"'
            joined = f"{req} and {marker}" if ";" in req else f"{req}; {marker}"
            lines.append(f"Requires-Dist: {joined}")
    return ("\n".join(lines) + "\n").encode()


def build_wheel(
    name: str,
    version: str,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    extras: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, bytes, bytes]:
    """A real wheel: (filename, bytes, METADATA bytes)."""
    dist = dist_name(name)
    dist_info = f"{dist}-{version}.dist-info"
    metadata = core_metadata(name, version, requires, requires_python, extras or {})
    pure = tag.endswith("-none-any")
    wheel = (
        "Wheel-Version: 1.0\nGenerator: condarchive-tests\n"
        f"Root-Is-Purelib: {'true' if pure else 'false'}\n"
        + "".join(f"Tag: {t}\n" for t in expand_tags(tag))
    ).encode()
    members = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel,
    }
    record = "".join(
        f"{path},sha256={urlsafe_digest(data)},{len(data)}\n" for path, data in members.items()
    )
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            archive.writestr(zipfile.ZipInfo(path, _EPOCH), data, zipfile.ZIP_DEFLATED)
    return f"{dist}-{version}-{tag}.whl", buffer.getvalue(), metadata


#: The sdist's in-tree PEP 517 backend: stdlib only. ``%(buildable)s`` and
#: ``%(record)s`` are filled in per sdist.
_BACKEND = '''\
"""In-tree build backend of a test sdist (tests/support/pypi_index.py)."""
import base64, hashlib, json, os, zipfile

BUILDABLE = %(buildable)r
RECORD_TO = %(record)r
HERE = os.path.dirname(os.path.abspath(__file__))


def _ran(hook):
    if RECORD_TO:
        with open(RECORD_TO, "w") as f:
            json.dump({"hook": hook, "cwd": os.getcwd(), "environ": dict(os.environ)}, f)
    if not BUILDABLE:
        raise RuntimeError("this test sdist refuses to build: its metadata is static")


def _metadata():
    with open(os.path.join(HERE, "PKG-INFO"), "rb") as f:
        return f.read()


def get_requires_for_build_wheel(config_settings=None):
    _ran("get_requires_for_build_wheel")
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _ran("prepare_metadata_for_build_wheel")
    dist_info = "%(dist)s-%(version)s.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info))
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "wb") as f:
        f.write(_metadata())
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _ran("build_wheel")
    dist_info = "%(dist)s-%(version)s.dist-info"
    members = {
        "%(dist)s/__init__.py": b"",
        dist_info + "/METADATA": _metadata(),
        dist_info + "/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = ""
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += "%%s,sha256=%%s,%%d\\n" %% (path, digest, len(data))
    members[dist_info + "/RECORD"] = (record + dist_info + "/RECORD,,\\n").encode()
    filename = "%(dist)s-%(version)s-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
    return filename
'''

_PYPROJECT = """\
[build-system]
requires = []
build-backend = "condarchive_test_backend"
backend-path = ["."]
"""

_SETUP_PY = 'raise RuntimeError("setup.py of a test sdist was run; its metadata is static")\n'


def build_sdist(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    extras: Mapping[str, Sequence[str]] | None = None,
    dynamic: bool = False,
    buildable: bool = False,
    build_record: Path | None = None,
) -> tuple[str, bytes, bytes]:
    """A real sdist: (filename, bytes, PKG-INFO bytes). See the module docstring."""
    dist = dist_name(name)
    root = f"{dist}-{version}"
    pkg_info = core_metadata(
        name,
        version,
        requires,
        requires_python,
        extras or {},
        metadata_version="2.2",
        dynamic=("Requires-Dist",) if dynamic else (),
    )
    backend = _BACKEND % {
        "buildable": buildable,
        "record": str(build_record) if build_record else None,
        "dist": dist,
        "version": version,
    }
    members = {
        f"{root}/PKG-INFO": pkg_info,
        f"{root}/pyproject.toml": _PYPROJECT.encode(),
        f"{root}/setup.py": _SETUP_PY.encode(),
        f"{root}/condarchive_test_backend.py": backend.encode(),
        f"{root}/{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    buffer = io.BytesIO()
    # mtime 0 in the gzip header too, so the same inputs give the same bytes.
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as archive:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 315532800
            archive.addfile(info, io.BytesIO(data))
    return f"{root}.tar.gz", buffer.getvalue(), pkg_info


class PyPIIndex:
    """Distributions under ``root_dir/files``, served as a simple index on 127.0.0.1.

    ``with index.serving() as url:`` (or ``url = index.start()`` ... ``index.stop()``)
    gives ``http://127.0.0.1:PORT/simple``. Files may be added while it serves.
    """

    def __init__(self, root_dir: Path) -> None:
        self.root = Path(root_dir)
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.files: list[IndexFile] = []
        self.requests: list[str] = []  # request paths, in order
        self.faults: dict[str, int] = {}  # path prefix -> status to answer instead
        self.port = 0
        self.files_elsewhere: str | None = None  # base URL the pages point files at
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- building ---------------------------------------------------------------------

    def add_wheel(
        self,
        name: str,
        version: str,
        tag: str = "py3-none-any",
        requires: Sequence[str] = (),
        requires_python: str | None = None,
        upload_time: datetime | None = None,
        extras: Mapping[str, Sequence[str]] | None = None,
    ) -> IndexFile:
        filename, data, metadata = build_wheel(
            name, version, tag, requires, requires_python, extras
        )
        return self._add(name, version, filename, data, metadata, requires_python, upload_time)

    def add_sdist(
        self,
        name: str,
        version: str,
        requires: Sequence[str] = (),
        requires_python: str | None = None,
        upload_time: datetime | None = None,
        extras: Mapping[str, Sequence[str]] | None = None,
        dynamic: bool = False,
        buildable: bool = False,
        build_record: Path | None = None,
    ) -> IndexFile:
        filename, data, metadata = build_sdist(
            name, version, requires, requires_python, extras, dynamic, buildable, build_record
        )
        return self._add(name, version, filename, data, metadata, requires_python, upload_time)

    def _add(
        self,
        name: str,
        version: str,
        filename: str,
        data: bytes,
        metadata: bytes,
        requires_python: str | None,
        upload_time: datetime | None,
    ) -> IndexFile:
        with self._lock:
            if any(f.filename == filename for f in self.files):
                raise ValueError(f"{filename} is already on the index")
            (self.files_dir / filename).write_bytes(data)
            entry = IndexFile(
                name=name,
                version=version,
                filename=filename,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                upload_time=upload_time or DEFAULT_UPLOAD_TIME,
                requires_python=requires_python,
                metadata=metadata,
            )
            self.files.append(entry)
            return entry

    def file(self, filename: str) -> IndexFile:
        return next(f for f in self.files if f.filename == filename)

    # -- serving ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/simple"

    def start(self) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        """Stop answering and close the port: later connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def serving(self) -> Iterator[str]:
        url = self.start()
        try:
            yield url
        finally:
            self.stop()

    def file_url(self, filename: str) -> str:
        """Where the pages say a file is: here, or under `files_elsewhere` when set (an
        index whose files live on another host, as PyPI's do)."""
        return f"{self.files_elsewhere or self.base_url}/files/{filename}"

    # -- pages ------------------------------------------------------------------------

    def projects(self) -> list[str]:
        with self._lock:
            return sorted({f.project for f in self.files})

    def project_files(self, project: str) -> list[IndexFile]:
        with self._lock:
            return sorted((f for f in self.files if f.project == project), key=lambda f: f.filename)

    def root_html(self) -> str:
        links = "".join(
            f'<a href="{html.escape(p)}/">{html.escape(p)}</a>\n' for p in self.projects()
        )
        return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"

    def root_json(self) -> dict[str, object]:
        return {"meta": {"api-version": "1.1"}, "projects": [{"name": p} for p in self.projects()]}

    def project_html(self, project: str) -> str:
        links = []
        for f in self.project_files(project):
            attributes = ""
            if f.requires_python:
                attributes += f' data-requires-python="{html.escape(f.requires_python)}"'
            metadata_hash = hashlib.sha256(f.metadata).hexdigest()
            attributes += f' data-core-metadata="sha256={metadata_hash}"'
            attributes += f' data-dist-info-metadata="sha256={metadata_hash}"'
            href = html.escape(f"{self.file_url(f.filename)}#sha256={f.sha256}")
            links.append(f'<a href="{href}"{attributes}>{html.escape(f.filename)}</a><br/>\n')
        title = f"Links for {html.escape(project)}"
        return (
            f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" '
            f'content="1.1"><title>{title}</title></head><body><h1>{title}</h1>\n'
            f"{''.join(links)}</body></html>\n"
        )

    def project_json(self, project: str) -> dict[str, object]:
        files = self.project_files(project)
        return {
            "meta": {"api-version": "1.1"},
            "name": project,
            "versions": list(dict.fromkeys(f.version for f in files)),
            "files": [
                {
                    "filename": f.filename,
                    "url": self.file_url(f.filename),
                    "hashes": {"sha256": f.sha256},
                    "requires-python": f.requires_python,
                    "core-metadata": {"sha256": hashlib.sha256(f.metadata).hexdigest()},
                    "dist-info-metadata": {"sha256": hashlib.sha256(f.metadata).hexdigest()},
                    "size": f.size,
                    "upload-time": f.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "yanked": False,
                }
                for f in files
            ],
        }

    def record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)

    def fault_for(self, path: str) -> int | None:
        with self._lock:
            return next((s for p, s in self.faults.items() if path.startswith(p)), None)


def wants_json(accept: str) -> bool:
    """PEP 691 content negotiation: JSON when it has the highest quality on offer."""
    best_json, best_html = 0.0, 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if media == JSON_TYPE:
            best_json = max(best_json, quality)
        elif media in (HTML_TYPE, "text/html", "*/*"):
            best_html = max(best_html, quality)
    return best_json > 0 and best_json >= best_html


def _handler_for(index: PyPIIndex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head=True)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(head=False)

        def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Vary", "Accept")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            index.record(path)
            fault = index.fault_for(path)
            if fault is not None:
                self._send(fault, f"{fault}\n".encode(), "text/plain", head)
                return
            as_json = wants_json(self.headers.get("Accept", ""))
            parts = [p for p in path.split("/") if p]
            if parts == ["simple"]:
                if not path.endswith("/"):
                    return self._redirect("/simple/")
                self._page(index.root_json() if as_json else index.root_html(), as_json, head)
            elif len(parts) == 2 and parts[0] == "simple":
                project = normalize(parts[1])
                if project != parts[1] or not path.endswith("/"):
                    return self._redirect(f"/simple/{project}/")
                if project not in index.projects():
                    return self._send(404, b"no such project\n", "text/plain", head)
                page = index.project_json(project) if as_json else index.project_html(project)
                self._page(page, as_json, head)
            elif len(parts) == 2 and parts[0] == "files":
                self._file(parts[1], head)
            else:
                self._send(404, b"not found\n", "text/plain", head)

        def _page(self, page: object, as_json: bool, head: bool) -> None:
            if as_json:
                self._send(200, json.dumps(page).encode(), JSON_TYPE, head)
            else:
                assert isinstance(page, str)
                self._send(200, page.encode(), "text/html; charset=utf-8", head)

        def _file(self, name: str, head: bool) -> None:
            if name.endswith(".metadata"):
                match = [f for f in index.files if f.filename == name.removesuffix(".metadata")]
                if match:
                    return self._send(200, match[0].metadata, "text/plain", head)
            elif "/" not in name and (index.files_dir / name).is_file():
                data = (index.files_dir / name).read_bytes()
                return self._send(200, data, "application/octet-stream", head)
            self._send(404, b"no such file\n", "text/plain", head)

    return Handler
