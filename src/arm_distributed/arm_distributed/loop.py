"""The driver's event loop of `arm train --distributed` (:mod:`.train` sets up the actors): it
keeps every collector busy and batches on their way to the learner, evaluates, and reacts to an
actor's death by its kind. It moves object references only."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arm_policy.rollout import train_seed
from arm_policy.run_log import RunLogger
from arm_policy.train_inprocess import record_evaluation as record_keyframe_evaluation
from arm_policy.train_qtopt import record_evaluation
from arm_policy.training_run import TrainingRun

if TYPE_CHECKING:
    from .train import _Run

PROGRESS_SECONDS = 30.0
#: a batch whose update fails this often in a row stops the run (a fault Ray's restarts do not mend)
MAX_TRIES = 5
#: the longest the end of a run waits for its episodes and batches under way
FINISH_SECONDS = 180.0


class _Interrupted(Exception):
    pass


@dataclass
class _Batch:
    """An update under way: its sampled parts, the Bellman updater's labels and the learner's
    weights they were computed with, and how often this batch was sent."""
    parts: list
    label: Any = None
    updater: int | None = None
    weights: Any = None
    tries: int = 1


class _Loop:
    """The driver's event loop: keeps every collector busy, ``batches_in_flight`` batches on
    their way through an updater to the learner, and evaluates every ``eval_every`` env steps
    (updates, offline only); reacts to every actor's death as :mod:`.train`'s docstring says."""

    def __init__(self, run: _Run, p: TrainingRun, logger: RunLogger, scripted: float, updates: int):
        self.r, self.p, self.logger, self.scripted = run, p, logger, scripted
        self.ray, self.s, self.d, self.cfg = run.ray, run.settings, run.dist, run.cfg
        self.updates = updates
        self.weights = run.learner.weights.remote()
        self.weights_at = updates
        self.collecting: dict[Any, tuple[int, Any, str]] = {}  # episode ref -> (collector, weights it plays, name)
        self.lost: dict[str, str] = {}  # episode name -> the death that lost it (collector, learner)
        self.updating: dict[Any, _Batch] = {}  # update ref -> its batch
        self.evaluating: tuple[Any, int] | None = None  # (ref, x)
        self.next_updater = 0
        self.next_episode = run.next_episode
        self.metrics: dict[str, float] = {}
        self.targets = self.new_env_steps = self.new_updates = 0
        self.playing_seconds = 0.0  # summed over collectors: the time they spent playing episodes
        self.recent: list[bool] = []
        self.began = self.ended = None

    def loop_seconds(self) -> float:
        if self.began is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.began

    def x(self) -> int:
        return self.updates if self.s.offline_only else self.p.env_steps

    # ------------------------------------------------------------------ submitting
    def submit_episode(self, i: int) -> None:
        k = self.next_episode
        self.next_episode += 1
        name = f"episode_{k:06d}"
        ref = self.r.collectors[i].episode.remote(self.weights, name, train_seed(self.s.seed, k))
        self.collecting[ref] = (i, self.weights, name)

    def sample(self) -> list:
        b = self.cfg.batch_size
        if self.r.offline is None:  # one prioritised replay, the demos in it
            return [self.r.online.sample.remote(b)]
        online = 0 if self.s.offline_only or self.p.env_steps == 0 else round((1 - self.cfg.replay_demo_fraction) * b)
        parts = [self.r.offline.sample.remote(b - online)]
        return parts + ([self.r.online.sample.remote(online)] if online else [])

    def submit_update(self, parts: list, updater: int | None = None, tries: int = 1) -> None:
        if tries > MAX_TRIES:
            raise RuntimeError(f"a batch failed {MAX_TRIES} times in a row although its actors answer again; "
                               "the actors' logs are in the Ray session folder")
        batch = _Batch(parts, tries=tries)
        if self.r.updaters:
            if updater is None:
                updater, self.next_updater = self.next_updater, (self.next_updater + 1) % len(self.r.updaters)
            batch.label = self.r.updaters[updater].label.remote(self.weights, *parts)
            batch.updater, batch.weights = updater, self.weights
            ref = self.r.learner.update.remote(batch.label)
        else:
            ref = self.r.learner.update.remote(*parts)
        self.updating[ref] = batch

    def may_collect(self) -> bool:
        """The other side of the update cap: collectors stay at most one episode each ahead of
        ``updates_per_step`` updates per env step, so a grasp buys as many updates as in process
        whichever side is faster (``updates_per_step`` 0: both run free)."""
        if self.s.offline_only:
            return False
        if self.s.updates_per_step == 0:
            return True
        ahead = self.p.env_steps - self.updates / self.s.updates_per_step
        return ahead < len(self.r.collectors) * self.r.episode_steps

    def cap(self) -> float:
        if self.s.offline_only or self.s.updates_per_step == 0:
            return float("inf")
        return self.s.updates_per_step * self.p.env_steps

    # ------------------------------------------------------------------ results
    def on_episode(self, ref) -> None:
        i, weights, name = self.collecting.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            if not self._ok(weights):  # the learner died before its weights reached the collector
                self.lost[name] = "learner"
                if weights is self.weights:  # and that death is not handled yet
                    self.learner_died()
                return
            self.r.restarts["collector"] += 1
            self.lost[name] = "collector"
            self.r.log(f"collector {i} died mid-episode: that episode is lost; Ray restarts the collector")
            self.r.wait_until_up(self.r.collectors[i], f"collector {i}")
            return
        self.r._note_first_step(result)
        self.r.report_placement()
        self.p.env_steps += result["steps"]
        self.new_env_steps += result["steps"]
        self.playing_seconds += result["seconds"]
        self.p.episodes += 1
        self.recent = (self.recent + [result["success"]])[-20:]

    def on_update(self, ref) -> None:
        batch = self.updating.pop(ref)
        try:
            m = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            # whose death failed it, asked in the order of the batch's way: replay, learner's
            # weights, updater, learner (a label fails with the weights it was given)
            if not all(self._ok(part) for part in batch.parts):  # Ray restarts the replay server from its bags
                self.r.log("a replay server died while sampling; Ray restarts it from its bags, a new batch is drawn")
                self.submit_update(self.sample(), batch.updater, batch.tries + 1)
            elif batch.label is not None and self._ok(batch.weights) and not self._ok(batch.label):
                self.r.restarts["bellman_updater"] += 1
                self.r.log(f"Bellman updater {batch.updater} died; its batch is labelled again by the restarted one")
                self.r.wait_until_up(self.r.updaters[batch.updater], f"Bellman updater {batch.updater}")
                self.submit_update(batch.parts, batch.updater, batch.tries + 1)
            else:
                self.learner_died(batch)
            return
        except self.ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            from arm_policy.agents import NumericalError

            if isinstance(cause, NumericalError):
                self.p.failure = (f"{cause}; the newest checkpoint in {self.r.run / 'checkpoints'} is the "
                                  "last good one")
                self.r.log(f"training stopped: {self.p.failure}")
                raise _Interrupted from err
            raise
        self.updates = int(m.pop("updates"))
        if "priorities" in m:
            self.r.online.update_priorities.remote(m.pop("replay_index"), m.pop("priorities"))
        self.new_updates += 1
        self.metrics = m
        if batch.label is not None:
            self.targets += self.cfg.batch_size
        if self.updates - self.weights_at >= self.d.weights_every:
            self.weights, self.weights_at = self.r.learner.weights.remote(), self.updates

    def _ok(self, ref) -> bool:
        try:
            self.ray.get(ref)
            return True
        except self.ray.exceptions.RayActorError:
            return False

    def learner_died(self, failed: _Batch | None = None) -> None:
        """Wait for Ray's restart (from the newest checkpoint), then send its batches (``failed``:
        the one whose failure told) again, labelled with the restarted learner's weights."""
        self.r.restarts["learner"] += 1
        pending = ([(failed, failed.tries + 1)] if failed else []) + [(b, b.tries) for b in self.updating.values()]
        self.updating.clear()
        pending = [(b.parts if all(self._ok(part) for part in b.parts) else self.sample(), tries) for b, tries in pending]
        self.r.wait_until_up(self.r.learner, "the learner")
        resumed = self.ray.get(self.r.learner.resumed.remote())
        self.updates = resumed["updates"] if resumed else 0
        self.r.log(f"the learner died; Ray restarted it from its newest checkpoint (update {self.updates}); "
                   f"{len(pending)} batches in flight are sent again")
        self.weights, self.weights_at = self.r.learner.weights.remote(), self.updates
        for parts, tries in pending:
            self.submit_update(parts, tries=tries)
        if self.evaluating is not None:
            self.evaluating = self.evaluate(self.evaluating[1])

    def evaluate(self, x: int) -> tuple[Any, int]:
        """An evaluation asked of the learner at ``x`` -> (its reference, x); an attending agent's
        first decision is saved as RUN/attention/env_step_<x>.png, as in process."""
        snapshot = None
        if self.r.method != "qtopt":
            (self.r.run / "attention").mkdir(exist_ok=True)
            snapshot = str(self.r.run / "attention" / f"env_step_{x:07d}.png")
        return self.r.learner.evaluate.remote(self.s.eval_episodes, snapshot), x

    def on_evaluation(self, ref) -> None:
        _, x = self.evaluating
        self.evaluating = None
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            self.learner_died()
            self.evaluating = self.evaluate(x)
            return
        updates = int(result.pop("updates"))
        if self.r.method == "qtopt":
            record_evaluation(self.p, self.logger, result, x, updates, self.metrics, self.scripted, self.s,
                              self.r.log, how="Ray, ")
        else:
            record_keyframe_evaluation(self.p, self.logger, result, updates, self.metrics, self.s, self.r.log,
                                       how="Ray, ", x=x)
        self.r.learner.set_progress.remote({"env_steps": self.p.env_steps, "episodes": self.p.episodes,
                                            "elapsed_seconds": round(self.p.elapsed(), 1)})

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        try:
            self._run()
        except _Interrupted:
            pass
        finally:
            self.ended = time.monotonic()

    def _run(self) -> None:
        ray, s, p, d = self.ray, self.s, self.p, self.d
        every = s.eval_every * max(s.updates_per_step, 1) if s.offline_only else s.eval_every
        next_eval = (p.curve[-1]["env_steps"] + every) if p.curve else 0
        last_progress = time.monotonic()
        self.began = time.monotonic()
        eval_seconds = 0.0
        while p.left() > 1.2 * eval_seconds + 5.0:
            if self.evaluating is None and self.x() >= next_eval:
                self.evaluating = self.evaluate(self.x())
                eval_began, next_eval = time.monotonic(), self.x() + every
            busy = {i for i, _, _ in self.collecting.values()}
            for i in range(len(self.r.collectors)):
                if i not in busy and self.may_collect():
                    self.submit_episode(i)
            while len(self.updating) < d.batches_in_flight and self.updates + len(self.updating) < self.cap():
                self.submit_update(self.sample())
            refs = list(self.collecting) + list(self.updating) + ([self.evaluating[0]] if self.evaluating else [])
            ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in self.collecting:
                    self.on_episode(ref)
                elif ref in self.updating:
                    self.on_update(ref)
                elif self.evaluating and ref == self.evaluating[0]:
                    self.on_evaluation(ref)
                    eval_seconds = time.monotonic() - eval_began
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                self.r.learner.set_progress.remote({"env_steps": p.env_steps, "episodes": p.episodes,
                                                    "elapsed_seconds": round(p.elapsed(), 1)})
                self.r.log(f"[{p.elapsed() / 60:5.1f} min] env steps {p.env_steps}  episodes {p.episodes}  "
                           f"updates {self.updates}  Bellman targets {self.targets}"
                           + (f"  exploring success (last {len(self.recent)}) {np.mean(self.recent):.2f}"
                              if self.recent else ""))
        self.finish_in_flight()
        if self.evaluating is None and (not p.curve or p.curve[-1]["env_steps"] != self.x()):
            self.evaluating = self.evaluate(self.x())
        while self.evaluating is not None:
            ray.wait([self.evaluating[0]])
            self.on_evaluation(self.evaluating[0])

    def finish_in_flight(self) -> None:
        """The episodes and batches under way at the end: counted when they finish (within
        FINISH_SECONDS; what is still out then is left, and said)."""
        deadline = time.monotonic() + FINISH_SECONDS
        while self.collecting or self.updating:
            left = deadline - time.monotonic()
            ready = self.ray.wait(list(self.collecting) + list(self.updating), num_returns=1,
                                  timeout=max(left, 0.0))[0] if left > 0 else []
            if not ready:
                self.r.log(f"end of the run: {len(self.collecting)} episodes and {len(self.updating)} batches still "
                           f"under way after {FINISH_SECONDS:.0f} s are not counted")
                break
            for ref in ready:
                if ref in self.collecting:
                    self.on_episode(ref)
                else:
                    self.on_update(ref)
