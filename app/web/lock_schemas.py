"""Request and response models of the permalink-era lock routes: import, search, diff."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_IMPORT_CHARS = 20_000_000  # a conda-lock.yml for 6 platforms of a big env is ~5 MB


class ImportBody(BaseModel):
    """A lockfile's text; its format is detected unless named."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "content": "# platform: linux-64\n@EXPLICIT\n"
                    "https://conda.anaconda.org/conda-forge/noarch/"
                    "tzdata-2024a-h0c530f3_0.conda#161081fc7cec0bfda0d86d7cb595f8d8\n",
                }
            ]
        },
    )

    content: str = Field(
        min_length=1,
        max_length=MAX_IMPORT_CHARS,
        description="`conda list --explicit --md5` output, a conda-lock.yml or a pixi.lock",
    )
    format: Literal["explicit", "conda-lock", "pixi"] | None = Field(
        default=None, description="detected from the content when omitted"
    )
    platform: str | None = Field(
        default=None, description="explicit files only: the platform, if no '# platform:' line"
    )
    environment: str | None = Field(
        default=None, description="pixi.lock only: which environment (default: 'default')"
    )


class ImportView(BaseModel):
    lock_id: str
    created: bool
    format: str
    targets: dict[str, int]
    links: dict[str, str]


class LockSummary(BaseModel):
    id: str
    created_at: str | None
    name: str | None = None
    channels: list[str]
    targets: dict[str, str]
    matches: list[dict[str, str]] | None = None
    links: dict[str, str]


class LockPage(BaseModel):
    items: list[LockSummary]
    total: int
    limit: int
    offset: int
    links: dict[str, str]


class PackageChange(BaseModel):
    name: str
    fields: list[str]
    from_: dict[str, Any] = Field(alias="from")
    to: dict[str, Any]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class PyPITargetDiff(BaseModel):
    """A target's PyPI packages compared (each entry has "source": "pypi"), and its
    local pip lines (not archived) as lines."""

    added: list[dict[str, Any]] = Field(default_factory=list)
    removed: list[dict[str, Any]] = Field(default_factory=list)
    changed: list[PackageChange] = Field(default_factory=list)
    unchanged: int = 0
    local_added: list[str] = Field(default_factory=list)
    local_removed: list[str] = Field(default_factory=list)


class TargetDiff(BaseModel):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[PackageChange]
    unchanged: int
    pypi: PyPITargetDiff = Field(default_factory=PyPITargetDiff)
    in_: Literal["both", "a", "b"] = Field(alias="in")
    platform: dict[str, str | None]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class LockDiff(BaseModel):
    a: str
    b: str
    identical: bool
    targets: dict[str, TargetDiff]
    summary: dict[str, int]  # conda and PyPI packages together
    pypi_summary: dict[str, int] = Field(default_factory=dict)


class LockRequestView(BaseModel):
    """One request that produced a lock: a solve job or an import, with what it asked."""

    id: int
    kind: Literal["solve", "import"]
    job_id: str | None
    name: str | None
    spec: dict[str, Any]
    spec_hash: str
    submitted: dict[str, Any]
    provenance: dict[str, Any]
    created_at: str | None


class LockRequests(BaseModel):
    lock_id: str
    total: int
    items: list[LockRequestView]
