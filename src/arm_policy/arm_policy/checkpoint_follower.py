"""An agent that follows a run folder's checkpoints while another process trains (no ROS): what
the policy node acts with, and what any acting process (a real-robot script) can use.

    follower = CheckpointFollower("runs/sim_train", reload_every=100)
    follower.poll()                      # call it now and then: a timer, between episodes
    if follower.agent is not None:
        pixel, action, q_map = follower.agent.act(obs, explore=False)

At first (and on every poll until there is one) it loads the newest checkpoint that loads:
older ones stand in for unreadable newer ones. After that a poll takes the newest checkpoint if
it is at least ``reload_every`` updates newer than the one in use. An unreadable file is
reported once (``error``) and not retried while it is unchanged; the last good weights keep
acting. A checkpoint removed by the trainer's ``keep_checkpoints`` meanwhile is no error.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Callable

from .agents import Agent, from_checkpoint
from .checkpoints import CheckpointError, list_checkpoints, load_checkpoint, load_latest_valid, step_of

__all__ = ["CheckpointFollower"]


class CheckpointFollower:
    def __init__(self, run_dir: str | Path, device: str | None = None, reload_every: int = 100,
                 info: Callable[[str], None] = print, error: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.device = device
        self.reload_every = reload_every
        self.info, self.error = info, error
        self.agent: Agent | None = None
        self.step: int | None = None
        self._bad_files: set[tuple[Path, int, int]] = set()  # (path, mtime_ns, size) reported once
        self._reported: set[str] = set()  # errors of the first load, reported once each

    def poll(self) -> None:
        """Load the newest checkpoint if there is none yet, or if it is reload_every newer."""
        if self.agent is None:
            self.load_first()
            return
        for path in reversed(list_checkpoints(self.run_dir)):
            step = step_of(path)
            if step < self.step + self.reload_every:
                return
            try:
                stat = path.stat()
            except OSError:
                continue  # deleted meanwhile (keep_last)
            key = (path, stat.st_mtime_ns, stat.st_size)
            if key in self._bad_files:
                continue
            try:
                agent = from_checkpoint(load_checkpoint(path), self.device)
            except Exception as err:  # noqa: BLE001 - CheckpointError, or a state of another shape
                if not path.exists():
                    continue  # removed by the trainer's keep_checkpoints meanwhile: not an error
                self._bad_files.add(key)
                reason = err if isinstance(err, CheckpointError) else f"{path}: {type(err).__name__}: {err}"
                self.error(f"cannot load checkpoint: {reason}; still acting on step {self.step}")
                continue
            self._use(agent, step, path)
            return

    def load_first(self) -> None:
        """Load the newest checkpoint that loads (older ones stand in for unreadable newer ones,
        which are reported once each and not retried while unchanged)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_latest_valid(self.run_dir, self.device or "cpu")
        for w in caught:
            self._report_once(str(w.message))
        if loaded is None:
            return
        for path in list_checkpoints(self.run_dir):  # the unreadable newer ones
            if step_of(path) > loaded.step:
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    self._bad_files.add((path, stat.st_mtime_ns, stat.st_size))
        try:
            agent = from_checkpoint(loaded.state, self.device)
        except Exception as err:  # noqa: BLE001 - a checkpoint file of ours, but no agent state
            self._report_once(f"checkpoint {loaded.path} holds no agent: {type(err).__name__}: {err}")
            return
        self._use(agent, loaded.step, loaded.path)

    def _report_once(self, text: str) -> None:
        if text not in self._reported:
            self._reported.add(text)
            self.error(text)

    def _use(self, agent: Agent, step: int, path: Path) -> None:
        self.agent, self.step = agent, step
        self.info(f"acting with checkpoint {path} (update {step}, "
                  f"{agent.cfg.image_size}x{agent.cfg.image_size} images, on {agent.device})")
