"""`serve`'s workers, kept running: a worker that dies is started again, with backoff.

Without this, a worker killed by the OOM killer or `kill -9` left embedded mode with an
API that answered and accepted jobs that no one would ever run. Each child is watched
from a thread; when one exits (and serve is not stopping), the restart is logged to
serve's stderr and happens after CONDARCHIVE_WORKER_RESTART_BACKOFF seconds, doubled for
each death within a minute of its start (at most 60 s), so a worker that cannot start
(a broken install, say) does not spin. What it was doing is recovered as for any dead
worker: its job's lease runs out and the sweeper re-sends it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

#: A worker that ran this long before dying starts again after the first backoff.
STABLE_AFTER = 60.0
MAX_BACKOFF = 60.0


def _log(message: str) -> None:
    print(f"condarchive serve: {message}", file=sys.stderr, flush=True)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    due: float | None = None  # when a dead child is started again

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)
        self.started = time.monotonic()
        self.due = None


class Supervisor:
    """Start `children` (name -> argv); restart any that exits; stop them all on `stop`."""

    def __init__(self, children: dict[str, list[str]], backoff: float, poll: float = 0.2) -> None:
        self.children = [Child(name, argv) for name, argv in children.items()]
        self.first_backoff = max(backoff, 0.0)
        self.poll = poll
        self._stopping = threading.Event()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        for child in self.children:
            child.start()
            assert child.process is not None
            _log(f"worker {child.name!r} started (pid {child.process.pid})")
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll):
            with self._guard:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for child in self.children:
                    self._check(child, now)

    def _check(self, child: Child, now: float) -> None:
        if child.due is not None:
            if now >= child.due:
                child.restarts += 1
                child.start()
                assert child.process is not None
                _log(
                    f"worker {child.name!r} restarted (pid {child.process.pid}, "
                    f"restart {child.restarts})"
                )
            return
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return
        lived = now - child.started
        if lived >= STABLE_AFTER or child.backoff == 0.0:
            child.backoff = self.first_backoff
        else:
            child.backoff = min(max(child.backoff * 2, 0.1), MAX_BACKOFF)
        child.due = now + child.backoff
        _log(
            f"worker {child.name!r} (pid {child.process.pid}) {_how(code)} after "
            f"{lived:.1f} s; restarting it in {child.backoff:g} s"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child, wait up to `timeout` s for each, then SIGKILL."""
        with self._guard:
            self._stopping.set()
        processes = [c.process for c in self.children if c.process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
