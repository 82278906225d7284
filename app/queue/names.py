"""The task names: the one contract between the senders (API, CLI, sweeper) and workers/.

Senders name a task; they never import the function behind it, so app/ does not depend
on workers/, which registers a function under each name.
"""

from __future__ import annotations

SOLVE = "condarchive.solve"
ARCHIVE_LOCK = "condarchive.archive_lock"
VERIFY_ARCHIVE = "condarchive.verify_archive"
ARCHIVE_SWEEP = "condarchive.archive_sweep"

#: Tasks that may run long (downloads, re-hashing every blob) go to the archive queue
#: (``{CONDARCHIVE_QUEUE}.archive``), so they never hold up a solve: `serve` runs a worker
#: for each queue, and `condarchive worker --queues` picks which a worker consumes.
ARCHIVE_QUEUE_TASKS = frozenset({ARCHIVE_LOCK, VERIFY_ARCHIVE})
