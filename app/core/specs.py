"""Environment specs: parse, normalise, and hash.

Canonical form (what the hashes cover, documented in README "Hashes"):

* spec: ``{"channels": [base URLs in the order given, duplicates dropped],
  "dependencies": [match specs normalised by py-rattler (strict=False), sorted, unique]}``,
  plus ``"pypi": <PyPI spec>`` (app/core/pypi_spec.py) only when the request has a PyPI
  part, so a spec without one keeps its hash.
  The environment's name does not change a solve, so it is kept for display only.
* request: ``{"version": 1, "spec": <spec>, "targets": [{name, platform,
  virtual_packages}] sorted by name, "exclude_newer": ISO-8601 UTC or null,
  "channel_priority": "strict" | "flexible" | "disabled"}``.

Each hash is the sha256 of ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rattler
import yaml

from app.core import safe_yaml
from app.core.canonical import format_time, sha256_of
from app.core.channels import ChannelError, fetch_refusal, is_url, resolve_allowed_channel
from app.core.pypi_requirements import PipSection, parse_pip_section
from app.core.pypi_spec import PyPIPolicy, PyPISpec, build_pypi_spec
from app.core.targets import Target
from app.errors import InputError, LimitError, setting_name


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str | None
    channels: tuple[str, ...]  # resolved base URLs
    dependencies: tuple[str, ...]  # normalised match specs, sorted
    submitted: dict[str, Any]  # what the user sent, for display
    pypi: PyPISpec | None = None  # the `pip:` part, checked against the allowlists

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {
            "channels": list(self.channels),
            "dependencies": list(self.dependencies),
        }
        if self.pypi is not None:
            canonical["pypi"] = self.pypi.canonical()
        return canonical

    @property
    def hash(self) -> str:
        return sha256_of(self.canonical())


@dataclass(frozen=True)
class SolveRequest:
    spec: EnvironmentSpec
    targets: tuple[Target, ...]
    exclude_newer: datetime | None
    channel_priority: str

    def canonical(self) -> dict[str, Any]:
        return {
            "version": 1,
            "spec": self.spec.canonical(),
            "targets": [t.as_dict() for t in self.targets],
            "exclude_newer": format_time(self.exclude_newer),
            "channel_priority": self.channel_priority,
        }

    @property
    def hash(self) -> str:
        return sha256_of(self.canonical())


def _line_of(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _dependency_lines(root: yaml.Node | None) -> tuple[int | None, ...]:
    """Line numbers of the items under `dependencies:`, for error messages."""
    if not isinstance(root, yaml.MappingNode):
        return ()
    for key, value in root.value:
        if getattr(key, "value", None) == "dependencies" and isinstance(value, yaml.SequenceNode):
            return tuple(_line_of(item) for item in value.value)
    return ()


@dataclass(frozen=True)
class EnvironmentYaml:
    """An environment.yml text parsed once, for every check of a request that reads it.

    `data` is what :func:`safe_yaml.load` returns, or `error` says why the text is not YAML
    (reported when the spec is built, with the line); `dependency_lines` holds the line of
    each item under `dependencies:`, for error messages.
    """

    text: str
    data: Any = None
    error: yaml.YAMLError | None = None
    dependency_lines: tuple[int | None, ...] = ()


def load_environment(
    text: str, max_depth: int | None = None, max_alias_nodes: int | None = None
) -> EnvironmentYaml:
    """Parse environment.yml once (within the YAML limits, by default the settings')."""
    try:
        root = safe_yaml.compose(text, max_depth, max_alias_nodes)
    except yaml.YAMLError as exc:
        return EnvironmentYaml(text, error=exc)
    lines = _dependency_lines(root)  # before construct() flattens merge keys in the tree
    try:
        data = safe_yaml.construct(root)
    except yaml.YAMLError as exc:
        return EnvironmentYaml(text, error=exc, dependency_lines=lines)
    return EnvironmentYaml(text, data, dependency_lines=lines)


def parse_environment_yaml(
    environment: str | EnvironmentYaml,
) -> tuple[str | None, list[Any], list[Any], list[int | None]]:
    """-> (name, channels, dependencies, line of each dependency). Errors name the line."""
    loc: list[str | int] = ["body", "environment"]
    if isinstance(environment, str):
        environment = load_environment(environment)
    if environment.error is not None:
        exc = environment.error
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(loc, f"environment.yml is not valid YAML{where}: {problem}") from exc
    data = environment.data
    if not isinstance(data, dict):
        raise InputError(loc, "environment.yml must be a mapping with channels and dependencies")
    channels = data.get("channels") or []
    dependencies = data.get("dependencies")
    if not isinstance(channels, list):
        raise InputError([*loc, "channels"], "channels must be a list")
    if not isinstance(dependencies, list) or not dependencies:
        raise InputError([*loc, "dependencies"], "dependencies must be a non-empty list")
    name = data.get("name")
    return (
        (str(name) if name is not None else None),
        channels,
        dependencies,
        list(environment.dependency_lines),
    )


def _spec_channel(spec: rattler.MatchSpec, raw: str) -> str | None:
    if spec.channel is None:
        return None
    channel_part = raw.split("::", 1)[0].strip() if "::" in raw else ""
    if is_url(channel_part) or is_url(raw):
        return spec.channel.base_url
    return spec.channel.name


#: `url="…"` and `channel="…"` in a match spec as py-rattler writes it back (normalised, so
#: ``http://2130706433/`` reads ``http://127.0.0.1/`` and a bare path reads ``file:///…``).
_SPEC_URL = re.compile(r'\b(url|channel)="([^"]*)"')


def spec_urls(spec: str | rattler.MatchSpec) -> list[str]:
    """Every URL a match spec makes the solver fetch: its package URL (a spec that is a URL,
    or ``x[url=…]``) and its channel when that is a URL, in the form py-rattler uses."""
    if isinstance(spec, str):
        spec = rattler.MatchSpec(spec, strict=False)
    urls = []
    for key, value in _SPEC_URL.findall(str(spec)):
        if key == "url" or "://" in value:
            urls.append(value)
    return urls


def normalise_dependency(raw: object, loc: list[str | int], where: str = "") -> rattler.MatchSpec:
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(loc, f"dependency{where} must be a match spec string", raw)
    try:
        return rattler.MatchSpec(raw.strip(), strict=False)
    except Exception as exc:  # InvalidMatchSpecError and friends
        raise InputError(loc, f"invalid match spec {raw!r}{where}: {exc}", raw) from exc
    except BaseException as exc:
        # rattler panics (pyo3's PanicException, a BaseException) on some input, e.g. a
        # build number that overflows u64; that is bad input too, not a crash.
        if type(exc).__name__ != "PanicException":
            raise
        raise InputError(loc, f"invalid match spec {raw!r}{where}: {exc}", raw) from None


def build_spec(
    *,
    environment: str | EnvironmentYaml | None,
    channels: list[Any] | None,
    dependencies: list[Any] | None,
    allowed_channels: list[str],
    channel_alias: str,
    max_channels: int | None = None,
    pypi_dependencies: list[Any] | None = None,
    pypi_indexes: list[Any] | None = None,
    pypi_policy: PyPIPolicy | None = None,
) -> EnvironmentSpec:
    """Parse either an environment.yml (its text, or parsed already) or channels +
    dependencies into a spec.

    Every URL the spec carries passes the allowlist: channels, ``channel::`` prefixes, and
    package URLs (``x[url=…]``, or a spec that is a URL). `max_channels` bounds the
    channels the spec resolves to, those named inside match specs included.

    The PyPI part is a ``{"pip": [...]}`` item of the dependencies (as in environment.yml)
    or `pypi_dependencies` (JSON), with `pypi_indexes`; its URLs pass `pypi_policy`."""
    lines: list[int | None] = []
    name: str | None = None
    if environment is not None:
        if channels is not None or dependencies is not None:
            raise InputError(
                ["body"], "send either 'environment' or 'channels' + 'dependencies', not both"
            )
        name, channels, dependencies, lines = parse_environment_yaml(environment)
        dep_loc: list[str | int] = ["body", "environment", "dependencies"]
        chan_loc: list[str | int] = ["body", "environment", "channels"]
        text = environment.text if isinstance(environment, EnvironmentYaml) else environment
        submitted: dict[str, Any] = {"environment": text}
    else:
        if not dependencies:
            raise InputError(["body", "dependencies"], "give 'environment' or 'dependencies'")
        channels = channels or []
        dep_loc, chan_loc = ["body", "dependencies"], ["body", "channels"]
        submitted = {"channels": channels, "dependencies": dependencies}

    resolved: dict[str, None] = {}  # ordered, with O(1) membership

    def add_channel(channel: str, loc: list[str | int]) -> None:
        try:
            urls = resolve_allowed_channel(channel, allowed_channels, channel_alias)
        except ChannelError as exc:
            raise InputError(loc, str(exc), channel) from exc
        resolved.update(dict.fromkeys(urls))
        if max_channels is not None and len(resolved) > max_channels:
            raise LimitError(
                loc,
                f"more than {max_channels} channels; the limit is {max_channels} "
                f"({setting_name('max_channels')})",
                "max_channels",
                max_channels,
            )

    for i, channel in enumerate(channels):
        if not isinstance(channel, str):
            raise InputError([*chan_loc, i], "a channel is a name or URL string", channel)
        if channel.strip() == "nodefaults":
            continue
        add_channel(channel, [*chan_loc, i])

    normalised: list[str] = []
    pip: PipSection | None = None
    pip_loc: list[str | int] = ["body", "pypi_dependencies"]
    if pypi_dependencies is not None:
        pip = parse_pip_section(pypi_dependencies, pip_loc)
        submitted["pypi_dependencies"] = pypi_dependencies
    if pypi_indexes is not None and environment is None:
        submitted["pypi_indexes"] = pypi_indexes
    for i, raw in enumerate(dependencies):
        line = lines[i] if i < len(lines) else None
        where = f" (line {line})" if line else ""
        if isinstance(raw, dict) and "pip" in raw:
            if pip is not None:
                raise InputError(
                    [*dep_loc, i], f"a second pip list{where}; give the PyPI part once"
                )
            pip_loc = [*dep_loc, i, "pip"]
            pip = parse_pip_section(raw["pip"], pip_loc)
            continue
        spec = normalise_dependency(raw, [*dep_loc, i], where)
        channel = _spec_channel(spec, str(raw))
        if channel == "defaults":
            # `defaults` is several channels, which one spec cannot name: py-rattler would
            # read it as conda.anaconda.org/defaults and silently find nothing.
            raise InputError(
                [*dep_loc, i],
                f"{raw!r}{where}: 'defaults::' names several channels; name one, e.g. "
                "'https://repo.anaconda.com/pkgs/main::<package>'",
                raw,
            )
        if channel is not None:
            add_channel(channel, [*dep_loc, i])
        for url in spec_urls(spec):
            if (reason := fetch_refusal(url, allowed_channels, channel_alias)) is not None:
                raise InputError([*dep_loc, i], f"match spec {raw!r}{where} refused: {reason}", raw)
        normalised.append(str(spec))
    if not resolved:
        raise InputError(chan_loc, "at least one channel is required")
    pypi = None
    if pip is not None or pypi_indexes:
        policy = pypi_policy or PyPIPolicy([], [], "https://pypi.org/simple")
        pypi = build_pypi_spec(pip, pypi_indexes, policy, pip_loc, ["body", "pypi_indexes"])
    if not normalised:
        only_local = pypi is not None and not pypi.requirements
        raise InputError(
            dep_loc,
            "nothing to lock: the pip list holds only local code (-e ., paths, -r files), "
            "which no server can fetch; add the conda packages (python at least)"
            if only_local
            else "the PyPI part needs conda dependencies too (python at least)",
        )
    return EnvironmentSpec(
        name=name,
        channels=tuple(resolved),
        dependencies=tuple(sorted(set(normalised))),
        submitted=submitted,
        pypi=pypi,
    )


def parse_environment_platforms(environment: str | EnvironmentYaml | None) -> list[str] | None:
    """The `platforms:` list of an environment.yml, as conda-lock reads it."""
    if environment is None:
        return None
    if isinstance(environment, str):
        environment = load_environment(environment)
    data = environment.data  # None when the text is not YAML
    platforms = data.get("platforms") if isinstance(data, dict) else None
    if isinstance(platforms, list) and all(isinstance(p, str) for p in platforms):
        return platforms
    return None
