"""`python -m app.cli`: the `condarchive` command (what `serve` starts its worker with)."""

import sys

from app.cli import main

sys.exit(main())
