"""`python -m extproc.cli` under tracemalloc, for hunting RSS growth.

SIGUSR1 the first time: take a baseline snapshot. Every later SIGUSR1: write
the top allocation sites grown since the baseline (by traceback) to the file
named by $TRACEMALLOC_OUT (default /tmp/tracemalloc-top.txt).
Used by `bench/run.sh --tracemalloc`; slows the server down a lot.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

tracemalloc.start(int(os.environ.get("TRACEMALLOC_FRAMES", "12")))
_base: list[tracemalloc.Snapshot] = []


def _dump(_sig: int, _frame: object) -> None:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    if not _base:
        _base.append(snap)
        return
    out = Path(os.environ.get("TRACEMALLOC_OUT", "/tmp/tracemalloc-top.txt"))
    lines = []
    for stat in snap.compare_to(_base[0], "traceback")[:15]:
        lines.append(f"{stat.size_diff / 1024:+.1f} KiB  {stat.count_diff:+d} blocks")
        lines.extend("    " + line for line in stat.traceback.format()[-12:])
    out.write_text("\n".join(lines) + "\n")


signal.signal(signal.SIGUSR1, _dump)

from extproc.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
