"""Targets and virtual packages in, locked records out, with py-rattler.

One :class:`Solver` lives per worker process and keeps one Gateway warm across jobs:
repodata is fetched and parsed once, then trusted for ``repodata_ttl`` seconds before
the Gateway re-validates it against its on-disk cache (HTTP conditional requests).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import rattler
import rattler.exceptions

from app.core import egress_proxy
from app.core.canonical import format_time
from app.core.channels import fetch_refusal
from app.core.egress import FetchRefused, allowlist, guard_hooks, redirect_error
from app.core.specs import spec_urls
from app.core.targets import Target
from app.core.tls import ssl_context
from app.locks.store import LockedRecord, LockedTarget

PRIORITIES = {
    "strict": rattler.ChannelPriority.Strict,
    "flexible": rattler.ChannelPriority.Flexible,
    "disabled": rattler.ChannelPriority.Disabled,
}


#: Called around each named step of a solve job (``with step("rattler.solve"): ...``), so
#: a caller can time the steps without patching them; :func:`untimed` does nothing.
StepTimer = Callable[[str], AbstractContextManager[object]]

#: Seconds past a solve's deadline before its thread is abandoned (the backstop for I/O
#: that ignores cancellation; the solve's own timeouts fire at the deadline).
HARD_GRACE = 5.0

#: Repodata probes (HEAD requests) in flight at once per solve.
PROBE_CONCURRENCY = 16

log = logging.getLogger(__name__)


def untimed(step: str) -> AbstractContextManager[None]:
    """The default :data:`StepTimer`: no clock."""
    return nullcontext()


class SolveFailure(Exception):
    """A solve that ended for a reason the user must see: kind is one of
    ``unsatisfiable``, ``channel``, ``timeout``."""

    def __init__(self, kind: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail or {}


@dataclass
class SubdirState:
    """What we know about the repodata a warm Gateway holds for one channel subdir."""

    loaded_at: float
    provenance: dict[str, Any]


#: In py-rattler's fetch errors: "HTTP status client error (404 Not Found) for url (…)".
_HTTP_STATUS = re.compile(r"\((\d{3})[^)]*\) for url \((\S+?)\)")
_FOR_URL = re.compile(r"for url \((\S+?)\)")
#: How py-rattler (0.28) ends a solve that hits its `timeout`. Matched whole, not as a
#: word such as "timeout", which can also be a package name in an unsatisfiable explanation.
_SOLVER_CANCELLED = "solve operation has been cancelled"
_COALESCED = "a coalesced request failed"
_INTERRUPTED = (
    "error decoding response body",
    "error reading a body",
    "connection reset",
    "connection closed",
    _COALESCED,
)


def _timeout(target: str, timeout: float) -> SolveFailure:
    return SolveFailure(
        "timeout",
        f"solving target {target} took over {timeout:g}s",
        {"target": target, "timeout": timeout},
    )


def _channel_failure(text: str, target: str) -> SolveFailure:
    """A repodata fetch error, named by URL and HTTP status (or the network error).

    py-rattler chains causes as "Caused by:" lines: the first line says what failed (often
    only the channel), the last says why (the status and the exact URL, or e.g.
    "Connection refused"), so the message carries both ends of the chain.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    cause = lines[-1].removeprefix("Caused by:").strip() if len(lines) > 1 else ""
    detail: dict[str, Any] = {"target": target, "explanation": text}
    if status := _HTTP_STATUS.search(text):
        detail["status"], detail["url"] = int(status[1]), status[2]
    elif url := _FOR_URL.search(text):
        detail["url"] = url[1]
    message = f"could not load repodata for target {target}: {first}"
    message = f"{message}: {cause}" if cause else message
    if detail.get("url") and detail["url"] not in message:  # e.g. "failed after 3 retries"
        message = f"{message} (fetching {detail['url']})"
    return SolveFailure("channel", message, detail)


def _classify(exc: BaseException, target: str, timeout: float, late: bool) -> SolveFailure:
    """Sort a failed target into unsatisfiable, timeout or channel.

    `late` says the deadline had passed: py-rattler's own solve timeout and asyncio's
    backstop fire at about the same moment, and either way the cause is the timeout.
    """
    text = str(exc).strip()
    if isinstance(exc, rattler.exceptions.SolverError):
        if late or _SOLVER_CANCELLED in text.lower():
            return _timeout(target, timeout)
        # The whole explanation: its first line alone ("Cannot solve the request because
        # of: The following packages are incompatible") says nothing of which, or why.
        return SolveFailure(
            "unsatisfiable",
            f"target {target}: {text or 'no solution'}",
            {"target": target, "explanation": text},
        )
    return _channel_failure(text or repr(exc), target)


def _interrupted(exc: BaseException) -> bool:
    """A repodata transfer that broke off (truncated body, reset connection), or a target
    that waited on one: worth fetching again, unlike an HTTP status or a solver error."""
    if isinstance(exc, rattler.exceptions.SolverError):
        return False
    text = str(exc).lower()
    return not _HTTP_STATUS.search(str(exc)) and any(marker in text for marker in _INTERRUPTED)


def _echoed(failure: BaseException) -> bool:
    """True for a failure that only echoes another target's: targets share one Gateway,
    so when a subdir fetch fails, the targets that waited on it get "a coalesced request
    failed" without the URL or status, and only the one that fetched gets the cause."""
    detail = getattr(failure, "detail", {})
    return str(detail.get("explanation", "")).startswith(_COALESCED)


class Solver:
    """Holds the warm Gateway and the repodata provenance it was loaded from."""

    def __init__(self, cache_dir: Path, repodata_ttl: float, retries: int = 3) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir
        self.repodata_ttl = repodata_ttl
        self.retries = retries
        # The Gateway's own client does not retry: one 503 from a CDN would fail the job.
        # py-rattler's standard client retries 5xx, timeouts and resets with backoff.
        # Every request it sends, redirect hops included, goes through this process's
        # egress proxy, which enforces the allowlist on each (app/core/egress_proxy.py).
        self.client = egress_proxy.rattler_client(max_retries=retries)
        self.gateway = rattler.Gateway(cache_dir=cache_dir, client=self.client)
        self.states: dict[tuple[str, str], SubdirState] = {}

    def _reset(self) -> None:
        """Drop the warm Gateway after a timeout: a fetch stuck in it would otherwise hold
        every later job that asks for the same subdir (requests are coalesced)."""
        egress_proxy.abort_all()
        self.gateway = rattler.Gateway(cache_dir=self.cache_dir, client=self.client)
        self.states = {}

    async def _probe(self, client: httpx.AsyncClient, channel: str, subdir: str) -> dict[str, Any]:
        """Record the state of the repodata the Gateway is about to load (etag or hash)."""
        url = f"{channel}/{subdir}/repodata.json"
        state: dict[str, Any] = {
            "channel": channel,
            "subdir": subdir,
            "url": url,
            "fetched_at": format_time(datetime.now(UTC)),
        }
        if url.startswith("file://"):
            path = Path(urlsplit(url).path)
            if path.exists():
                state["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            return state
        try:
            response = await client.head(url)
        except FetchRefused as exc:  # the request hook: e.g. the host resolves privately
            raise SolveFailure(
                "channel", f"could not load repodata of {channel}/{subdir}: {exc}", {"url": url}
            ) from exc
        except httpx.HTTPError as exc:
            state["error"] = str(exc)
            return state
        state["status"] = response.status_code
        refused = redirect_error(response, *allowlist())
        if refused is not None:  # the Gateway would follow it: fail before it does
            raise SolveFailure(
                "channel",
                f"could not load repodata of {channel}/{subdir}: {refused}",
                {"url": url, "status": response.status_code, "redirect": refused.target},
            )
        for header in ("etag", "last-modified", "content-length"):
            if header in response.headers:
                state[header.replace("-", "_")] = response.headers[header]
        return state

    async def _refresh(self, channels: list[str], subdirs: set[str]) -> set[tuple[str, str]]:
        """Probe the (channel, subdir)s this Gateway does not hold fresh; return them (the
        Gateway loads their repodata during the next query or solve)."""
        now = time.monotonic()
        stale: list[tuple[str, str]] = []
        for channel in channels:
            for subdir in subdirs:
                state = self.states.get((channel, subdir))
                if state is None or now - state.loaded_at > self.repodata_ttl:
                    if state is not None:
                        self.gateway.clear_repodata_cache(channel + "/", [subdir])
                    stale.append((channel, subdir))
        if not stale:
            return set()
        async with httpx.AsyncClient(
            timeout=10,
            follow_redirects=False,
            verify=ssl_context(),
            event_hooks={"request": guard_hooks()["request"]},
        ) as client:
            # A few at a time: thousands queued in httpcore's pool make each request's
            # turn cost O(queue) on the event loop, which then starves even the timeout.
            gate = asyncio.Semaphore(PROBE_CONCURRENCY)

            async def probe(channel: str, subdir: str) -> dict[str, Any]:
                async with gate:
                    return await self._probe(client, channel, subdir)

            probes = await asyncio.gather(*(probe(c, s) for c, s in stale))
        for (channel, subdir), provenance in zip(stale, probes, strict=True):
            self.states[(channel, subdir)] = SubdirState(now, provenance)
        return set(stale)

    async def solve(
        self,
        channels: list[str],
        specs: list[str],
        targets: list[Target],
        exclude_newer: datetime | None,
        channel_priority: str,
        timeout: float,
        on_progress: Callable[[str, str], None],
        step: StepTimer = untimed,
    ) -> tuple[list[LockedTarget], dict[str, Any]]:
        """Solve every target concurrently; raise :class:`SolveFailure` on the first failure.

        `step` is called around ``rattler.solve``, ``records converted`` and ``allowlist
        check`` for each target.

        `timeout` is a hard deadline: the solve runs on a thread of its own, with its own
        event loop, and if it has not ended `HARD_GRACE` seconds after the deadline (I/O
        that ignores cancellation, a channel that trickles bytes) it is abandoned, its
        connections cut and the warm Gateway replaced, so this worker takes the next job.
        """
        refuse_urls(channels, specs)  # before anything is fetched
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[list[LockedTarget], dict[str, Any]]] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if outcome.done():
                return
            if error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(result)

        def run() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = asyncio.run(
                    self._solve(
                        channels,
                        specs,
                        targets,
                        exclude_newer,
                        channel_priority,
                        timeout,
                        on_progress,
                        step,
                    )
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting loop
                error = exc
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:  # the waiting loop is gone: this solve was abandoned
                pass

        threading.Thread(target=run, name="solve", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), timeout + HARD_GRACE)
        except TimeoutError as exc:
            log.warning("solve still running %.0fs past its deadline: abandoned", HARD_GRACE)
            self._reset()
            raise SolveFailure(
                "timeout", f"solving took over {timeout:g}s", {"timeout": timeout}
            ) from exc
        except SolveFailure as failure:
            if failure.kind == "timeout":
                self._reset()
            elif failure.kind == "channel":
                _name_refusals(failure, started)
            raise

    async def _solve(
        self,
        channels: list[str],
        specs: list[str],
        targets: list[Target],
        exclude_newer: datetime | None,
        channel_priority: str,
        timeout: float,
        on_progress: Callable[[str, str], None],
        step: StepTimer,
    ) -> tuple[list[LockedTarget], dict[str, Any]]:
        subdirs = {t.platform for t in targets} | {"noarch"}
        deadline = time.monotonic() + timeout
        try:
            cold = await asyncio.wait_for(self._refresh(channels, subdirs), timeout)
        except TimeoutError as exc:
            raise SolveFailure("timeout", f"fetching repodata took over {timeout:g}s") from exc

        async def one(target: Target) -> LockedTarget:
            # A target whose repodata this Gateway does not hold yet spends nearly all its
            # time fetching and parsing it (the solve itself takes milliseconds), so its
            # progress says so until it is done. (Loading it first with Gateway.query would
            # tell the two apart, at the cost of handing every record to Python.)
            cold_target = any((c, s) in cold for c in channels for s in (target.platform, "noarch"))
            on_progress(target.name, "fetching repodata" if cold_target else "solving")
            for attempt in range(self.retries + 1):
                remaining = max(deadline - time.monotonic(), 0.001)
                try:
                    with step("rattler.solve"):
                        records = await asyncio.wait_for(
                            rattler.solve(
                                [c + "/" for c in channels],
                                specs,
                                gateway=self.gateway,
                                platforms=[target.platform, "noarch"],
                                virtual_packages=target.rattler_virtual_packages(),
                                channel_priority=PRIORITIES[channel_priority],
                                exclude_newer=exclude_newer,
                                timestamp_policy="allow-missing",
                                timeout=timedelta(seconds=remaining),
                            ),
                            remaining,
                        )
                    break
                except TimeoutError as exc:
                    on_progress(target.name, "failed")
                    raise _timeout(target.name, timeout) from exc
                except Exception as exc:
                    late = time.monotonic() >= deadline
                    if attempt < self.retries and not late and _interrupted(exc):
                        # A body cut short: the client retries statuses, not bodies.
                        await asyncio.sleep(min(0.5 * 2**attempt, remaining))
                        continue
                    on_progress(target.name, "failed")
                    raise _classify(exc, target.name, timeout, late) from exc
            on_progress(target.name, "done")
            with step("records converted"):
                converted = [LockedRecord.from_rattler(r) for r in records]
            locked = tuple(sorted(converted, key=lambda r: r.name))
            with step("allowlist check"):
                _check_upstream(target.name, locked)
                _check_inside_channel(target.name, locked)
            return LockedTarget(target.name, target.platform, target.virtual_packages, locked)

        results = await asyncio.gather(*(one(t) for t in targets), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise min(failures, key=_echoed)
        provenance = {
            "solver": {"name": "py-rattler", "version": _rattler_version()},
            "channels": list(channels),
            "repodata": [
                self.states[(c, s)].provenance
                for c in channels
                for s in sorted(subdirs)
                if (c, s) in self.states
            ],
            "exclude_newer": format_time(exclude_newer),
            "channel_priority": channel_priority,
            "solved_at": format_time(datetime.now(UTC)),
        }
        return [r for r in results if isinstance(r, LockedTarget)], provenance


def refuse_urls(channels: list[str], specs: list[str]) -> None:
    """Fail as `channel` when a channel, or a URL a match spec carries (``x[url=…]``, a
    package URL, a ``channel::`` prefix), is outside the allowlist or at a private address
    it does not name: checked again here, as the worker sees the job, before anything is
    fetched (the allowlist may have changed since the request was accepted). Nothing is
    connected to, so the error reads the same whether a port there is open or closed."""
    allowed, alias = allowlist()
    for channel in channels:
        if (reason := fetch_refusal(channel, allowed, alias)) is not None:
            raise SolveFailure("channel", f"channel {channel} refused: {reason}", {"url": channel})
    for spec in specs:
        for url in spec_urls(spec):
            if (reason := fetch_refusal(url, allowed, alias)) is not None:
                raise SolveFailure(
                    "channel", f"match spec {spec!r} refused: {reason}", {"spec": spec, "url": url}
                )


def _name_refusals(failure: SolveFailure, started: float) -> None:
    """Name in a channel failure what the egress proxy refused (or could not connect to)
    during the solve: py-rattler reports a refused https tunnel without the URL it was
    for, and an unreachable host as the proxy's 502."""
    if refused := egress_proxy.refusals_since(started):
        note = f"egress refused {refused[0].url}: {refused[0].reason}"
        failure.detail = {**failure.detail, "refused": refused[0].url}
    elif unreachable := egress_proxy.unreachable_since(started):
        note = f"{unreachable[0].reason}"  # py-rattler sees the proxy's 502
    else:
        return
    failure.message = f"{failure.message} ({note})"
    failure.args = (failure.message,)


def _check_upstream(target: str, records: tuple[LockedRecord, ...]) -> None:
    """Fail as `channel` when repodata names a file with a path in it, or outside the
    allowlist (its `base_url`): upstream's word, checked before it is locked or fetched."""
    from app.core.filenames import upstream_record_problem

    allowed, alias = allowlist()
    for record in records:
        problem = upstream_record_problem(
            record.filename, record.subdir, record.url, allowed, alias
        )
        if problem is not None:
            raise SolveFailure(
                "channel",
                f"target {target}: repodata of {record.channel} {problem}",
                {"target": target, "url": record.url},
            )


def _check_inside_channel(target: str, records: tuple[LockedRecord, ...]) -> None:
    """Fail as `channel` when a channel's repodata (its `info.base_url`) locates a file
    outside that channel: a channel may only speak for its own files, or it could lock
    another allowlisted channel's real file under metadata of its own making."""
    for record in records:
        channel = record.channel.rstrip("/")
        base_url = record.url.rsplit("/", 1)[0]
        inside = urlsplit(channel + "/")
        where = urlsplit(record.url)
        path = where.path
        if (
            (where.scheme.lower(), where.netloc.lower())
            == (inside.scheme.lower(), inside.netloc.lower())
            and path.startswith(inside.path)
            and ".." not in unquote(path).replace("\\", "/").split("/")
            and not where.query
        ):
            continue
        raise SolveFailure(
            "channel",
            f"target {target}: repodata of channel {channel} sets base_url {base_url}, "
            f"outside the channel, for {record.filename} ({record.name} {record.version} "
            f"{record.build}); a channel's base_url may only point inside the same channel",
            {"target": target, "channel": channel, "base_url": base_url, "url": record.url},
        )


@functools.cache
def _rattler_version() -> str:
    from importlib.metadata import version

    return version("py-rattler")
