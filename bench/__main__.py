"""`python -m bench`: see bench/README.md."""

from __future__ import annotations

import os
import sys

from bench.run import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # py-rattler's tokio threads can crash the interpreter while it finalizes (SIGSEGV or
    # "PyGILState_Release: thread state must be current"), turning a finished run into a
    # failed one; everything is written and flushed, so leave without finalizing.
    os._exit(code)
