"""An offline bundle of one locked target: a tar a paper can deposit next to itself.

``condarchive-<id12>-<target>/`` holds

* ``channel/<subdir>/…`` and ``channel/<subdir>/repodata.json``: a conda channel of
  exactly the target's archived files (``noarch`` always listed, so any conda client
  reads it as a channel);
* ``pypi/files/…`` and ``pypi/simple/<name>/index.html``: the PyPI files as a PEP 503
  tree, when the lock has any;
* ``explicit.txt`` and ``requirements.txt`` pointing into the bundle by relative path,
  ``lock.json``, ``CITATION.cff`` and a ``README.md`` on installing it.

The tar is planned first (every member's name, size and where its bytes are) and then
streamed: headers are built with :mod:`tarfile` and each blob is copied in chunks, so
nothing is held whole in memory or on disk. Member order, mtimes (the lock's creation
time), owners and modes are fixed, so every request gives the same bytes, and the plan
alone fixes them: its digest is the strong ETag.
"""

from __future__ import annotations

import hashlib
import html
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.archive.blobs import BlobStore
from app.archive.repodata import ArchivedFile, archive_repodata, encode
from app.db.models import (
    ArchiveEntry,
    Blob,
    LockPackage,
    LockPyPIPackage,
    PackageFile,
    PyPIArchiveEntry,
    PyPIFile,
)

BLOCK = 512
RECORD = 10240  # tarfile's record size: the archive is padded to a multiple of it
CHUNK = 1024 * 1024


class NotArchived(Exception):
    """Files of the target that the archive does not hold: no bundle can be made."""

    def __init__(self, filenames: list[str]) -> None:
        super().__init__(", ".join(filenames))
        self.filenames = filenames


@dataclass(frozen=True)
class Member:
    path: str
    size: int
    data: bytes | None = None  # generated content, or
    blob: str | None = None  # the sha256 of a stored blob


@dataclass
class BundlePlan:
    root: str
    mtime: int
    members: list[Member] = field(default_factory=list)

    def add_bytes(self, path: str, data: bytes) -> None:
        self.members.append(Member(f"{self.root}/{path}", len(data), data=data))

    def add_blob(self, path: str, sha256: str, size: int) -> None:
        self.members.append(Member(f"{self.root}/{path}", size, blob=sha256))

    @property
    def etag(self) -> str:
        digest = hashlib.sha256()
        for m in self.members:
            content = m.blob or hashlib.sha256(m.data or b"").hexdigest()
            digest.update(f"{m.path}\0{m.size}\0{content}\n".encode())
        digest.update(str(self.mtime).encode())
        return digest.hexdigest()

    def header(self, member: Member) -> bytes:
        info = tarfile.TarInfo(member.path)
        info.size = member.size
        info.mtime = self.mtime
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")

    @property
    def content_length(self) -> int:
        total = 0
        for member in self.members:
            total += len(self.header(member)) + _padded(member.size)
        total += 2 * BLOCK
        return _round_up(total, RECORD)

    def stream(self, store: BlobStore) -> Iterator[bytes]:
        """The tar's bytes, member by member (blobs in chunks)."""
        written = 0
        for member in self.members:
            head = self.header(member)
            yield head
            written += len(head)
            if member.data is not None:
                yield member.data
            else:
                assert member.blob is not None
                yield from store.stream(member.blob)
            padding = _padded(member.size) - member.size
            if padding:
                yield b"\0" * padding
            written += _padded(member.size)
        end = _round_up(written + 2 * BLOCK, RECORD) - written
        yield b"\0" * end


def _padded(size: int) -> int:
    return _round_up(size, BLOCK)


def _round_up(size: int, unit: int) -> int:
    return -(-size // unit) * unit


def _conda_files(
    session: Session, lock_id: str, target: str
) -> list[tuple[PackageFile, Blob | None]]:
    rows = session.execute(
        select(PackageFile, Blob)
        .join(LockPackage, LockPackage.package_id == PackageFile.id)
        .outerjoin(
            ArchiveEntry,
            (ArchiveEntry.package_id == PackageFile.id) & (ArchiveEntry.state == "archived"),
        )
        .outerjoin(Blob, Blob.sha256 == ArchiveEntry.blob_sha256)
        .where(LockPackage.lock_id == lock_id, LockPackage.target == target)
    ).all()
    return sorted(((p, b) for p, b in rows), key=lambda row: (row[0].subdir, row[0].filename))


def _pypi_files(session: Session, lock_id: str, target: str) -> list[tuple[PyPIFile, str | None]]:
    rows = session.execute(
        select(PyPIFile, PyPIArchiveEntry.blob_sha256)
        .join(LockPyPIPackage, LockPyPIPackage.pypi_package_id == PyPIFile.id)
        .outerjoin(
            PyPIArchiveEntry,
            (PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
            & (PyPIArchiveEntry.state == "archived"),
        )
        .where(LockPyPIPackage.lock_id == lock_id, LockPyPIPackage.target == target)
    ).all()
    return sorted(((p, s) for p, s in rows), key=lambda row: (row[0].name, row[0].filename))


def plan_bundle(
    session: Session,
    document: dict[str, Any],
    target: str,
    created_at: datetime,
    citation: Callable[[], str],
) -> BundlePlan:
    """What the bundle of `target` holds; :class:`NotArchived` names the missing files.

    `document` is the lock's JSON (``lock_view``), `citation` renders its CITATION.cff.
    """
    lock_id = document["id"]
    data = document["targets"][target]
    plan = BundlePlan(f"condarchive-{lock_id[:12]}-{target}", int(created_at.timestamp()))
    conda = _conda_files(session, lock_id, target)
    pypi = _pypi_files(session, lock_id, target)
    missing = [p.filename for p, blob in conda if blob is None]
    missing += [p.filename for p, sha256 in pypi if sha256 is None]
    if missing:
        raise NotArchived(sorted(missing))

    subdirs = sorted({p.subdir for p, _ in conda} | {"noarch"})
    by_subdir: dict[str, list[ArchivedFile]] = {s: [] for s in subdirs}
    explicit = [
        f"# condarchive bundle of lock {lock_id}, target {target} ({data['platform']})",
        "# paths are relative to this file's directory: run the installer from it",
        "@EXPLICIT",
    ]
    for package, blob in conda:
        assert blob is not None
        by_subdir[package.subdir].append(ArchivedFile(package, blob.sha256, blob.md5, blob.size))
        explicit.append(f"./channel/{package.subdir}/{package.filename}#{blob.sha256}")
    for subdir in subdirs:
        for archived in by_subdir[subdir]:
            plan.add_blob(f"channel/{subdir}/{archived.filename}", archived.sha256, archived.size)
        plan.add_bytes(
            f"channel/{subdir}/repodata.json", encode(archive_repodata(subdir, by_subdir[subdir]))
        )
    plan.add_bytes("explicit.txt", ("\n".join(explicit) + "\n").encode())

    if pypi:
        projects: dict[str, list[PyPIFile]] = {}
        for package, sha256 in pypi:
            assert sha256 is not None
            plan.add_blob(f"pypi/files/{package.filename}", sha256, package.size)
            projects.setdefault(package.name, []).append(package)
        plan.add_bytes("pypi/simple/index.html", _simple_root(sorted(projects)))
        for name in sorted(projects):
            plan.add_bytes(f"pypi/simple/{name}/index.html", _simple_project(name, projects[name]))
        lines = [
            f"# condarchive bundle of lock {lock_id}, target {target}: the PyPI part",
            "# pip install --no-deps --require-hashes -r requirements.txt",
            "--no-index",
            "--find-links ./pypi/files",
        ]
        lines += [f"{p.name}=={p.version} --hash=sha256:{p.sha256}" for p, _ in pypi]
        plan.add_bytes("requirements.txt", ("\n".join(lines) + "\n").encode())

    plan.add_bytes("lock.json", json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
    plan.add_bytes("CITATION.cff", (citation() + "\n").encode())
    plan.add_bytes("README.md", _readme(lock_id, target, data["platform"], bool(pypi)).encode())
    return plan


def _simple_root(names: list[str]) -> bytes:
    links = "".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a>\n' for n in names)
    return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n".encode()


def _simple_project(name: str, files: list[PyPIFile]) -> bytes:
    links = "".join(
        f'<a href="../../files/{html.escape(f.filename)}#sha256={f.sha256}">'
        f"{html.escape(f.filename)}</a>\n"
        for f in sorted(files, key=lambda f: f.filename)
    )
    title = f"<h1>{html.escape(name)}</h1>\n"
    return f"<!DOCTYPE html>\n<html><body>\n{title}{links}</body></html>\n".encode()


def _readme(lock_id: str, target: str, platform: str, has_pypi: bool) -> str:
    pip = (
        "\nThen the PyPI part, into the environment's Python:\n\n"
        "    <env>/bin/python -m pip install --no-deps --require-hashes -r requirements.txt\n"
        if has_pypi
        else ""
    )
    pypi_dir = "its PyPI files as a simple index (`pypi/`), " if has_pypi else ""
    requirements = " and `requirements.txt`" if has_pypi else ""
    return f"""# condarchive bundle: lock {lock_id[:12]}, target {target} ({platform})

Everything this environment installs, with no network needed: a conda channel of its
packages (`channel/`), {pypi_dir}the lock (`lock.json`, id {lock_id}) and how to cite
it (`CITATION.cff`). Every file's sha256 is in the lock and in `explicit.txt`{requirements};
installers check them.

Unpack it and run the commands from this directory.

With condarchive (checks every hash, no network):

    condarchive install --bundle condarchive-{lock_id[:12]}-{target}.tar --prefix ./env

With micromamba or conda (the explicit file's paths are relative to this directory):

    sed "s|^\\./|file://$PWD/|" explicit.txt > explicit-here.txt
    micromamba create -y -p ./env -f explicit-here.txt
    # or: conda create -p ./env --file explicit-here.txt

With pixi or any conda client, `channel/` is a channel:

    pixi init --channel "file://$PWD/channel" ...
{pip}"""
