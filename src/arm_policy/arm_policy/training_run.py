"""The bookkeeping of an in-process training run (ARM's and QT-Opt's): its clock and counters,
carried through checkpoints so an interrupted run resumes where it was, its evaluation curve,
and summary.json at the end. No ROS.

    progress = TrainingRun(run_dir, minutes=30)
    learner = Learner.start(..., extra_state=progress.state)
    progress.resume(learner)                   # counters, time spent and curve from the checkpoint
    with progress.training(learner, log, env.close):
        while progress.left() > margin: ...    # train, evaluate: progress.curve.append(row)
    progress.finish({"task": ..., ...}, learner.updates)
"""
from __future__ import annotations

import contextlib
import csv
import os
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .agents import NumericalError
from .learner import Learner, TrainingFailed
from .run_log import read_metrics, write_summary

__all__ = ["LAST_EVALUATIONS", "TrainingRun", "keep_metrics_until", "stop_on_sigterm", "summarise_curve"]

LAST_EVALUATIONS = 3  # summary.json's eval_success_last_mean: the mean of the last ones


def stop_on_sigterm() -> tuple:
    """From now on SIGTERM (``kill``, a benchmark stopping its cells) stops a run as Ctrl-C does:
    a KeyboardInterrupt, so the run writes its last checkpoint, keeps its replay files and marks
    summary.json interrupted, and resumes where it was. Once stopping (by either signal), later
    SIGTERMs are ignored: a Ctrl-C in a terminal reaches a benchmark's cells too, and the
    benchmark's SIGTERM to them a moment later must not break the checkpoint they are writing;
    a second Ctrl-C still stops at once. A SIGINT the process was started ignoring (a background
    job) stays ignored. (Without this a SIGTERM ended the process where it stood, and a
    benchmark's cell deleted its replay files on the way out, so the resumed cell learnt from
    the demos alone.) Main thread only. Returns the previous (SIGTERM, SIGINT) handlers."""
    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, stop)
    if previous[1] is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop)
    return previous


def summarise_curve(curve: list[dict]) -> dict:
    """summary.json's success figures from the evaluations in order: the untrained agent's (the
    first, before any update), the final one, the best (a maximum over repeated evaluations of
    the same scenes, which flatters) and the mean of the last ``LAST_EVALUATIONS``."""
    success = [float(r["eval_success"]) for r in curve]
    return {"untrained_success": success[0], "eval_success": success[-1],
            "best_success": max(success),
            "eval_success_last_mean": float(np.mean(success[-LAST_EVALUATIONS:])),
            **{k: v for k, v in curve[-1].items() if k.startswith("eval_") and k != "eval_success"}}


def keep_metrics_until(run: Path, step: int) -> None:
    """Drop metrics.csv rows logged after ``step`` (an interrupted attempt past the checkpoint it
    resumes from; -1: a fresh start), so the curve has each evaluation once."""
    path = run / "metrics.csv"
    if not path.exists():
        return
    if step < 0:
        path.unlink()
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    col = rows[0].index("step") if "step" in rows[0] else None  # RunLogger's step
    kept = [rows[0]] + [r for r in rows[1:] if col is None or (len(r) > col and r[col]
                                                               and float(r[col]) <= step)]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


class TrainingRun:
    """Env steps, episodes, the wall-clock budget and the evaluations of one run folder."""

    def __init__(self, run: Path | str, minutes: float):
        self.run, self.minutes = Path(run), float(minutes)
        self.env_steps = self.episodes = 0
        self.curve: list[dict] = []  # one dict per evaluation: its x ("env_steps") and eval_* values
        self.start = time.monotonic()
        self.failure: str | None = None
        self.interrupted = False  # stopped by Ctrl-C (or SIGTERM): summary.json says so

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.start + self.minutes * 60 - time.monotonic()

    def state(self) -> dict:
        """What a checkpoint carries of the run (the Learner's ``extra_state``)."""
        return {"progress": {"env_steps": self.env_steps, "episodes": self.episodes,
                             "elapsed_seconds": round(self.elapsed(), 1)}}

    def resume(self, learner: Learner, by_updates: bool = False) -> bool:
        """Take the counters, the time spent and the evaluations up to the checkpoint the learner
        resumed from (the curve's x is updates with ``by_updates``); False for a fresh run."""
        if learner.resumed is None:
            keep_metrics_until(self.run, -1)
            return False
        self.restore(learner.resumed.state.get("progress", {}), learner.updates if by_updates else None)
        learner.env_steps, learner.episodes = self.env_steps, self.episodes
        return True

    def restore(self, progress: dict, upto: int | None = None) -> None:
        """The counters and time spent a checkpoint's ``progress`` holds, and the evaluations up
        to x = ``upto`` (default: its env steps) from metrics.csv; later rows are dropped."""
        self.env_steps, self.episodes = int(progress.get("env_steps", 0)), int(progress.get("episodes", 0))
        self.start = time.monotonic() - float(progress.get("elapsed_seconds", 0.0))
        upto = self.env_steps if upto is None else upto
        rows = read_metrics(self.run / "metrics.csv") if (self.run / "metrics.csv").exists() else []
        self.curve = [{"env_steps": r["step"], **{k: v for k, v in r.items() if k.startswith("eval_")}}
                      for r in rows if "eval_success" in r and r["step"] <= upto]
        keep_metrics_until(self.run, upto)

    @contextlib.contextmanager
    def training(self, learner: Learner, log: Callable[[str], None], *closers: Callable[[], None]):
        """The training loop's frame: a NumericalError ends it with the reason (``failure``), a
        Ctrl-C (KeyboardInterrupt) as ``interrupted``, without the final evaluation; then the
        learner closes (a last checkpoint unless it failed), and ``closers`` run. :meth:`finish`
        writes summary.json either way (and raises KeyboardInterrupt again after an interrupt)."""
        try:
            yield self
        except NumericalError as err:
            self.failure = f"{err}; the newest checkpoint in {self.run / 'checkpoints'} is the last good one"
            log(f"training stopped: {self.failure}")
        except KeyboardInterrupt:
            self.interrupted = True
            log("interrupted: a last checkpoint and summary.json (no final evaluation)")
        finally:
            # an interrupted run will be resumed: its replay files stay for it
            learner.close(final_checkpoint=self.failure is None, keep_replay=self.interrupted)
            for close in closers:
                close()

    def finish(self, fields: dict, updates: int) -> dict:
        """summary.json: ``fields``, the curve's figures, the counters and the wall time (and
        ``error`` after a failure, which is then raised as TrainingFailed; ``interrupted`` after a
        Ctrl-C, raised again as KeyboardInterrupt)."""
        failure = self.failure
        summary = {**fields, **(summarise_curve(self.curve) if self.curve else {}),
                   "evaluations": len(self.curve), "env_steps": self.env_steps,
                   "episodes": self.episodes, "updates": updates,
                   "wall_seconds": round(self.elapsed(), 1), **({"error": failure} if failure else {}),
                   **({"interrupted": True} if self.interrupted else {})}
        # a resumed run's summary.json still says how its last attempt ended: this one decides
        write_summary(self.run, forget=("error", "interrupted"), **summary)
        if failure:
            raise TrainingFailed(failure)
        if self.interrupted:
            raise KeyboardInterrupt
        return summary
