"""Request and response models: what the API promises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    field_validator,
)

from app.locks.store import VIEW_FIELDS, LockedRecord

#: conda-lock's default platforms, used when neither the request nor environment.yml names any.
DEFAULT_TARGETS = ["linux-64", "osx-64", "win-64"]


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    platform: str
    virtual_packages: list[str] = Field(default_factory=list)


#: One line of text (a title, a name): no line breaks or control characters.
Line = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class AuthorBody(BaseModel):
    """An author as CITATION.cff names a person (`given-names`, `family-names`)."""

    model_config = ConfigDict(extra="forbid")

    given_names: Line | None = None
    family_names: Line
    orcid: Annotated[
        str | None, Field(pattern=r"^https://orcid\.org/[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9X]$")
    ] = None
    affiliation: Line | None = None


class SolveBody(BaseModel):
    """`environment` (environment.yml text) or `channels` + `dependencies`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channels": ["conda-forge"],
                    "dependencies": ["python=3.12", "numpy>=1.26,<2"],
                    "targets": [
                        "linux-64",
                        "osx-arm64",
                        {
                            "name": "linux-64-cuda12",
                            "platform": "linux-64",
                            "virtual_packages": ["__cuda=12.4", "__glibc=2.28"],
                        },
                    ],
                }
            ]
        },
    )

    environment: str | None = Field(default=None, description="environment.yml text")
    channels: list[Any] | None = None
    dependencies: list[Any] | None = None
    pypi_dependencies: list[Any] | None = Field(
        default=None,
        description="PyPI requirement lines, as in an environment.yml's pip: list",
    )
    pypi_indexes: list[Any] | None = Field(
        default=None,
        description="PyPI index URLs (the first is the index, the rest extra indexes); "
        "default https://pypi.org/simple",
    )
    targets: list[str | TargetBody] | None = Field(
        default=None, description=f"platforms or target objects; default {DEFAULT_TARGETS}"
    )
    exclude_newer: datetime | None = Field(
        default=None, description="solve as the channels stood at this time"
    )
    channel_priority: Literal["strict", "flexible", "disabled"] = "strict"
    # Citation metadata: kept with this request (its job and its row among the lock's
    # requests), never part of the lock id or the request hash.
    title: Line | None = Field(default=None, description="the environment's title, to cite it")
    authors: Annotated[list[Line | AuthorBody], Field(max_length=100)] | None = Field(
        default=None,
        description='"Given Family" or "Family, Given" strings, or {given_names, family_names}',
    )
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] | None
    ) = None

    def metadata(self) -> dict[str, Any]:
        """The citation metadata given, in the form the job and the lock page keep."""
        found: dict[str, Any] = {}
        if self.title:
            found["title"] = self.title
        if self.authors:
            found["authors"] = [
                a if isinstance(a, str) else a.model_dump(exclude_none=True) for a in self.authors
            ]
        if self.description:
            found["description"] = self.description
        return found

    @field_validator("exclude_newer")
    @classmethod
    def _exclude_newer_in_utc(cls, value: datetime | None) -> datetime | None:
        """Times are compared in UTC, so one with no UTC equivalent (an offset that pushes
        it before year 1 or past 9999) is refused here instead of failing the request later."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("exclude_newer is out of range once converted to UTC") from exc


class ErrorInfo(BaseModel):
    kind: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)


class SolveView(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str | None = None
    progress: dict[str, str] = Field(default_factory=dict)
    request_hash: str
    spec_hash: str
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    lock_id: str | None = None
    error: ErrorInfo | None = None
    links: dict[str, str]


def _locked_package_view() -> type[BaseModel]:
    """The response model of one locked package, from the one list of its fields."""
    hints = get_type_hints(LockedRecord)
    hints["depends"] = list[str]
    hints["constrains"] = list[str]
    return create_model("LockedPackageView", **{name: (hints[name], ...) for name in VIEW_FIELDS})


LockedPackageView = _locked_package_view()


class PyPIPackageView(BaseModel):
    """One locked PyPI package and the one file the target installs."""

    name: str
    version: str
    kind: Literal["index", "url", "vcs"]
    url: str
    filename: str
    sha256: str
    size: int
    requires_python: str | None
    requires: list[str]
    index: str | None
    vcs: dict[str, str] | None


class LockTargetView(BaseModel):
    platform: str
    virtual_packages: list[str]
    packages: list[LockedPackageView]
    pypi_packages: list[PyPIPackageView] = Field(default_factory=list)
    pypi_local: list[str] = Field(
        default_factory=list, description="pip lines that are local code, not archived"
    )


class LockView(BaseModel):
    id: str
    created_at: str | None
    spec: dict[str, Any]
    targets: dict[str, LockTargetView]
    provenance: dict[str, Any]
    # Where this lock's archive lives: links only, so the lock JSON stays stable.
    archive: dict[str, Any] | None = None
