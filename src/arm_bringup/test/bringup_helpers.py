"""Helpers of the arm_bringup tests: ROS domains, fake nodes, watched subprocesses.

(A module with a unique name rather than conftest.py: test modules import it, and several
packages' test directories have a conftest.)
"""
from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_NODE = HERE / "fake_node.py"


def _domain_range(first: int = 51, last: int = 59) -> range:
    """This process's share of first..last: the whole range, or under ``pytest -n N`` (xdist)
    a slice of its own per worker, so two workers never start nodes in one domain."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    ids = range(first, last + 1)
    if not worker.startswith("gw") or count <= 1:
        return ids
    share = len(ids) // count
    if share < 1:
        raise RuntimeError(f"{count} pytest workers but only {len(ids)} test ROS domains ({first}..{last})")
    index = int(worker[2:])
    return ids[index * share:(index + 1) * share]


_range = _domain_range()
_domains = itertools.cycle(_range)
# Start at a pid-dependent place so two test runs on one machine rarely share a domain.
for _ in range(os.getpid() % len(_range)):
    next(_domains)


def next_domain() -> int:
    """The next ROS_DOMAIN_ID of the 51..59 range these tests may use (this worker's share of it)."""
    return next(_domains)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def wait_dead(pids, timeout: float = 5.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if pid_alive(p)]
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.05)


class Watched:
    """A subprocess whose stdout+stderr lines are collected in the background."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 15.0, count: int = 1) -> list[re.Match]:
        """Wait until ``count`` lines match the regex ``pattern``; returns the matches."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError(f"no {count} line(s) matching {pattern!r} in:\n"
                                         + "\n".join(self.lines))
                self._cond.wait(min(left, 0.2))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=5)
        return rc

    def kill(self) -> None:
        """Kill the process group (cleanup after a failed test)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)


def start_launcher(tmp_path: Path, nodes: list[dict], *args: str) -> Watched:
    spec_file = tmp_path / f"nodes_{len(list(tmp_path.glob('nodes_*.json')))}.json"
    spec_file.write_text(json.dumps(nodes))
    return Watched([sys.executable, "-m", "arm_bringup.launcher", str(spec_file), *args])


def started_pids(w: Watched) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in map(re.compile(r"^\[launch\] started (\S+) \(pid (\d+)\)").search, w.lines)
            if m}
