"""The agent's own transitions of an in-process run, kept on disk beside its checkpoints, so a
resumed run learns from the replay it had (the demos are read again from their bags). No ROS.

    files = ReplayFiles(run_dir)
    files.write(add_index, replay.rows(slots))   # at each checkpoint: what came since the last one
    for add_index, rows in files.read(before=added): replay.put_rows(add_index, rows)

Layout: ``RUN/replay/agent_{first:010d}.npz``, one file per write, holding the declared fields
of its transitions and ``add_index``: each one's place in the order they went into the replay
(the ring's slot is that modulo its capacity). Files are written atomically (temp file, fsync,
rename). A checkpoint names how many items the replay had taken; a file from after it (written
before a crash, or after an older checkpoint than the newest was loaded) is deleted on resume,
and a file whose items have all been overwritten in the ring is deleted once that is so.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from .checkpoints import atomic_write

__all__ = ["ReplayFiles"]

SUBDIR = "replay"
_NAME = re.compile(r"^agent_(\d{10})\.npz$")


class ReplayFiles:
    """The ``replay/`` folder of one run."""

    def __init__(self, run_dir: Path | str):
        self.dir = Path(run_dir) / SUBDIR

    def files(self) -> list[tuple[int, Path]]:
        """(first add index, path) of every file, oldest first."""
        if not self.dir.is_dir():
            return []
        found = ((_NAME.match(p.name), p) for p in self.dir.iterdir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def write(self, add_index: np.ndarray, rows: dict[str, np.ndarray]) -> Path | None:
        """Save transitions (their add indices, increasing, and their fields) -> the file."""
        add_index = np.asarray(add_index, dtype=np.int64)
        if not add_index.size:
            return None
        path = self.dir / f"agent_{int(add_index[0]):010d}.npz"
        return atomic_write(path, lambda f: np.savez(f, add_index=add_index, **rows))

    def read(self, before: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(add indices, fields) of each file whose items were all added before ``before``, in
        order. A file that cannot be read raises ValueError naming it."""
        for first, path in self.files():
            if first >= before:
                break
            try:
                with np.load(path) as data:
                    rows = {k: data[k] for k in data.files}
            except (OSError, ValueError, KeyError, EOFError) as err:
                raise ValueError(f"replay file {path} cannot be read: {err}") from err
            add_index = rows.pop("add_index", None)
            if add_index is None or add_index.max() >= before:
                raise ValueError(f"replay file {path} does not end before item {before}")
            yield add_index, rows

    def drop_from(self, first: int) -> int:
        """Delete the files of items added at or after ``first``, and the temp files of writers
        killed mid-write -> how many files."""
        doomed = [p for start, p in self.files() if start >= first]
        for p in doomed:
            p.unlink()
        for tmp in self.dir.glob(".agent_*.tmp") if self.dir.is_dir() else ():
            tmp.unlink(missing_ok=True)
        return len(doomed)

    def drop_overwritten(self, added: int, capacity: int) -> int:
        """Delete the files all of whose items the ring has overwritten since (fewer than the
        newest ``capacity`` of ``added`` items) -> how many."""
        files = self.files()
        oldest_live = added - capacity
        # a file ends where the next begins; the newest is never dropped
        doomed = [p for (_, p), (nxt, _) in zip(files, files[1:]) if nxt <= oldest_live]
        for p in doomed:
            p.unlink()
        return len(doomed)

    def remove(self) -> None:
        """The run is over: no resume will need them."""
        shutil.rmtree(self.dir, ignore_errors=True)
