"""`arm train --distributed`: QT-Opt's distributed loop (seed 001, Fig. 3) on Ray, from this one
machine to a cluster, for QT-Opt and for ARM (and its SAC baseline). The run folder is the
in-process trainer's (config.json, checkpoints/, metrics.csv, training/, learning_curve.png,
summary.json), plus ``replay/online`` (every episode the collectors closed, as bags: for ARM the
bags the ROS graph's recorder writes) beside ``demos/`` (QT-Opt's scripted grasps, ARM's demos).

    arm train --distributed --algo qtopt --task grasp_bin --minutes 60 --out runs/qt_ray
    arm train --distributed --algo qtopt --task grasp_bin --collectors 2 --bellman-updaters 2 --out runs/qt_ray
    arm train --distributed --algo arm --task pick_up_cup --collectors 1 --bellman-updaters 1 --out runs/cup_ray
    arm train --distributed --algo qtopt --task grasp_bin --address auto --out runs/qt_cluster

The driver (this process) only moves references. Collectors put closed episodes into the replay
servers; the driver asks the servers for batches (QT-Opt: ``replay_demo_fraction`` of each from
the offline one once the online one has data; ARM: one prioritised replay holding the demos too),
a Bellman updater labels each with the published target networks' targets, and the learner
trains on the labelled batch, the three linked by object references so the data goes from actor
to actor (ARM's new priorities go back to its replay). The learner publishes the networks acting
and labelling need every ``weights_every`` updates; collectors and updaters take the newest at
their next call. Updates are capped at ``updates_per_step`` per collected env step, as in process,
so both make the same number of updates per env step.

Faults: every actor is restarted by Ray when it dies. A collector's episode in flight is lost
(nothing of it reached a replay server) and the collector gets the next one; a batch whose
updater died is labelled again by the restarted updater before the learner sees it; a learner
that died resumes from its newest checkpoint, the replay servers keep their data (and reload it
from the bags if they die themselves). Ctrl-C (or SIGTERM) stops the run with a final checkpoint
and summary and ray.shutdown() stops every process of a local Ray.
"""
from __future__ import annotations

import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from arm_policy.agents import agent_config
from arm_policy.rollout import train_seed
from arm_policy.run_log import RunLogger, write_config
from arm_policy.settings import TrainSettings
from arm_policy.train_inprocess import record_evaluation as record_keyframe_evaluation
from arm_policy.train_qtopt import SCRIPTED_NOISE, offline_folder, record_evaluation, scripted_name
from arm_policy.training_run import TrainingRun, keep_metrics_until

from .cluster import ray_session
from .settings import DistributedSettings

__all__ = ["check_distributed", "train_distributed"]

PROGRESS_SECONDS = 30.0


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def check_distributed(settings: TrainSettings, dist: DistributedSettings) -> None:
    """ValueError naming what a distributed run cannot do with these settings."""
    if settings.method not in ("qtopt", "arm", "sac"):
        raise ValueError(f"arm train --distributed runs qtopt, arm or sac; {settings.method!r} trains in "
                         "process (arm train --inprocess)" + (": it learns from the demos only, there is "
                                                              "nothing to collect" if settings.method == "bc" else ""))
    if settings.offline_only and settings.method != "qtopt":
        raise ValueError("--offline-only is QT-Opt's mode (training on the scripted grasps only)")
    if settings.device not in ("auto", "cpu"):
        raise ValueError("the distributed actors run on the CPU (--device cpu or auto)")
    if dist.collectors < 1 and not settings.offline_only:
        raise ValueError("online training needs --collectors >= 1 (or --offline-only)")


def train_distributed(settings: TrainSettings, dist: DistributedSettings,
                      log: Callable[[str], None] = print) -> dict:
    """Train ``settings.method`` on Ray; returns summary.json's fields."""
    check_distributed(settings, dist)
    command_began = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ray_session(dist, log) as session:
            return _Run(settings, dist, session, command_began, log).train()
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Run:
    def __init__(self, settings: TrainSettings, dist: DistributedSettings, session, command_began: float,
                 log: Callable[[str], None]):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from . import actors

        self.ray, self.settings, self.dist, self.log = ray, settings, dist, log
        self.command_began = command_began
        self.run = Path(settings.out).resolve()
        self.run.mkdir(parents=True, exist_ok=True)
        self.method = settings.method
        self.cfg = agent_config(settings.preset, settings.agent_overrides, self.method)
        write_config(self.run, {"train": asdict(settings), "distributed": asdict(dist), "agent": self.cfg.to_dict()})
        seed = settings.seed
        demo_dir = Path(settings.demo_dir).resolve() if settings.demo_dir else self.run / "demos"
        if self.method != "qtopt":
            self.record_demos(demo_dir)
        self.spec = {"method": self.method, "cfg_dict": self.cfg.to_dict(),
                     "run": {"task": settings.task, "episode_length": settings.episode_length,
                             "demo_dir": str(demo_dir), "demos": settings.demos}}
        spec = self.spec
        #: the most env steps of one episode (QT-Opt: the bin's step limit; ARM: the poses per episode)
        self.episode_steps = self.cfg.max_steps if self.method == "qtopt" else settings.episode_length
        # the run folder is on the driver's machine: the actors that write it live there too
        here = NodeAffinitySchedulingStrategy(session.node_id, soft=False)
        restart = dict(max_restarts=-1, max_task_retries=0)
        Replay = ray.remote(num_cpus=0, scheduling_strategy=here, **restart)(actors.ReplayServer)
        self.offline = None  # QT-Opt's scripted grasps; ARM's demos are in its one replay
        if self.method == "qtopt":
            self.offline = Replay.options(name=actors.OFFLINE).remote(
                "offline", str(offline_folder(settings, self.cfg).resolve()), spec, seed)
        self.online = Replay.options(name=actors.ONLINE).remote("online", str(self.run / "replay" / "online"),
                                                                spec, seed + 1)
        # the learner first: on a cluster it must find its CPU on this node before collectors fill it
        Learner = ray.remote(num_cpus=1, scheduling_strategy=here, **restart)(actors.LearnerWorker)
        self.learner = Learner.options(name="learner").remote(
            str(self.run), spec, {"checkpoint_every": settings.checkpoint_every,
                                 "keep_checkpoints": settings.keep_checkpoints, "device": "cpu", "seed": seed},
            bool(dist.bellman_updaters))
        Collector = ray.remote(num_cpus=1, **restart)(actors.Collector)
        self.collectors = [Collector.options(name=f"collector-{i}").remote(i, spec, seed)
                           for i in range(dist.collectors)]
        self.Updater = ray.remote(num_cpus=1, **restart)(actors.BellmanUpdater)
        self.updaters: list = []  # started after the collectors' first steps: those come first
        self.restarts = {"collector": 0, "bellman_updater": 0, "learner": 0}
        self.first_step_at: float | None = None

    # ------------------------------------------------------------------ helpers
    def _note_first_step(self, result: dict) -> None:
        if self.first_step_at is None:
            # the wall clock of the actor's machine: on one machine, the same clock as ours
            self.first_step_at = result["began"] - (time.time() - time.monotonic())

    def wait_until_up(self, actor, what: str, seconds: float = 180.0) -> None:
        """Block until Ray has restarted ``actor`` (its calls fail at once while it restarts)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.ray.get(actor.pid.remote(), timeout=seconds)
                return
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not come back within {seconds:.0f} s") from None
                time.sleep(0.5)

    def record_demos(self, demo_dir: Path) -> None:
        """ARM's demos, recorded here (as in process) if the folder has none: the replay server
        and the learner read them at start."""
        from arm_sim.demos import record_demos

        s = self.settings
        if not (demo_dir / s.task).exists():
            self.log(f"recording {s.demos} demos of {s.task} at {self.cfg.image_size}x{self.cfg.image_size}")
            record_demos(s.task, s.demos, s.seed, demo_dir, self.cfg.image_size, progress=self.log)

    def record_offline(self) -> float | None:
        """QT-Opt's scripted grasps missing from the offline replay, played by the collectors (a
        temporary one when there are none) -> the success rate of all ``demos`` of them (None for
        ARM, whose demos are there already)."""
        from .actors import Collector

        ray, s = self.ray, self.settings
        if self.offline is None:
            return None
        wanted = [scripted_name(s.seed + i) for i in range(s.demos)]
        have = set(ray.get(self.offline.names.remote()))
        todo = [s.seed + i for i in range(s.demos) if wanted[i] not in have]
        players = self.collectors or [ray.remote(num_cpus=1, max_restarts=-1)(Collector).remote(
            0, self.spec, s.seed)]
        began, done, jobs = time.monotonic(), s.demos - len(todo), {}
        if todo:
            self.log(f"offline data: {len(todo)} scripted grasps to play (noise {SCRIPTED_NOISE}), "
                     f"{done} there already")
        while todo or jobs:
            busy = {p for p, _ in jobs.values()}
            for player in [p for p in players if p not in busy][:len(todo)]:
                seed = todo.pop(0)
                jobs[player.scripted.remote(seed)] = (player, seed)
            ready, _ = ray.wait(list(jobs), num_returns=1)
            player, seed = jobs.pop(ready[0])
            try:
                self._note_first_step(ray.get(ready[0]))
                done += 1
            except ray.exceptions.RayActorError:
                self.restarts["collector"] += 1
                self.log(f"a collector died playing scripted grasp {seed}; Ray restarts it, the grasp is played again")
                self.wait_until_up(player, "a collector")
                todo.append(seed)
                continue
            if done % 25 == 0 or not (todo or jobs):
                rate = ray.get(self.offline.stats.remote(wanted))["success_rate"]
                self.log(f"offline data: {done}/{s.demos} scripted grasps, {rate:.2f} succeeded "
                         f"({time.monotonic() - began:.0f} s)")
        if not self.collectors:
            ray.kill(players[0])
        return ray.get(self.offline.stats.remote(wanted))["success_rate"]

    def count_restarts(self) -> None:
        """``restarts`` per kind of actor as Ray counted them: an actor killed while idle is
        restarted without any call of ours failing."""
        from ray._private import state  # the actor table; its public face needs the dashboard

        kinds = {"collector": self.collectors, "bellman_updater": self.updaters, "learner": [self.learner]}
        for kind, handles in kinds.items():
            try:
                counted = sum(int(state.actors(h._actor_id.hex()).get("NumRestarts", 0)) for h in handles)
            except Exception:  # noqa: BLE001 - a private API: keep what the failed calls counted
                continue
            self.restarts[kind] = max(self.restarts[kind], counted)

    def _online_stats(self) -> dict:
        try:
            return self.ray.get(self.online.stats.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - a dead replay at the very end: the summary says nothing of it
            return {}

    def report_placement(self) -> None:
        """Where every actor runs (node and PID), in the log and the summary."""
        if self.placement is not None:
            return
        found = {}
        for name, ref in self.placement_refs.items():
            try:
                found[name] = self.ray.get(ref, timeout=60)
            except Exception as err:  # noqa: BLE001 - died, or still starting: say so
                found[name] = f"unknown ({type(err).__name__})"
        self.placement = found
        self.log("actors: " + ", ".join(f"{name} on {at}" for name, at in found.items()))

    def start_updaters(self) -> None:
        self.updaters = [self.Updater.options(name=f"bellman-updater-{j}").remote(j, self.settings.seed)
                         for j in range(self.dist.bellman_updaters)]

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict:
        ray, s, log = self.ray, self.settings, self.log
        scripted = self.record_offline()
        self.start_updaters()
        resumed = ray.get(self.learner.resumed.remote())
        p = TrainingRun(self.run, s.minutes)
        if resumed is None:
            keep_metrics_until(self.run, -1)
        else:
            p.restore(resumed["progress"], resumed["updates"] if s.offline_only else None)
            log(f"resuming {self.run} at update {resumed['updates']}")
        replays = {"replay-offline": self.offline} if self.offline is not None else {}
        actors = {"learner": self.learner, **replays, "replay-online": self.online,
                  **{f"collector-{i}": c for i, c in enumerate(self.collectors)},
                  **{f"bellman-updater-{j}": u for j, u in enumerate(self.updaters)}}
        # asked now, read once the first episode is in: waiting here would hold the first
        # episode back until the last updater process is up
        self.placement_refs = {name: a.where.remote() for name, a in actors.items()}
        self.placement: dict[str, str] | None = None
        online = ray.get(self.online.stats.remote())
        p.env_steps, p.episodes = online["transitions"], online["episodes"]  # the bags are the truth
        names = ray.get(self.online.names.remote())
        # episodes lost to a dead collector leave gaps: a resumed run numbers on after the last bag
        self.next_episode = 1 + max((int(n.split("_")[1]) for n in names), default=-1)
        for line in online["skipped"]:
            log(f"online replay: skipped {line}")
        if scripted is None:
            what = f"{s.demos} demos of {s.task} in the replay"
        else:
            what = f"{'offline only' if s.offline_only else 'offline + online'}; scripted success {scripted:.2f}"
        log(f"{self.method} on Ray ({what}): {len(self.collectors)} collectors, {self.dist.bellman_updaters} "
            f"Bellman updaters, 1 learner; {p.env_steps} env steps of its own in the replay")
        logger = RunLogger(self.run)
        loop = _Loop(self, p, logger, scripted, resumed["updates"] if resumed else 0)
        interrupted = False
        try:
            loop.run()
        except KeyboardInterrupt:
            interrupted = True
            # the learner's last checkpoint comes after the work it has in hand (a few updates, an
            # evaluation): cancelling that would raise KeyboardInterrupt inside the actor, which
            # can land in the checkpoint itself
            log("interrupted: a last checkpoint (after the learner's work in hand) and summary, then Ray stops")
        finally:
            logger.close()
        final = None
        if p.failure is None:
            try:
                final = ray.get(self.learner.close.remote(), timeout=120)
            except Exception as err:  # the run's result stays; say why there is no last checkpoint
                log(f"no final checkpoint: {err}")
        self.count_restarts()
        self.report_placement()
        elapsed = max(loop.loop_seconds(), 1e-9)
        rates = {"env_steps_per_second": round(loop.new_env_steps / elapsed, 2),
                 "updates_per_second": round(loop.new_updates / elapsed, 2),
                 "targets_per_second": round(loop.targets / elapsed, 2),
                 # one collector's pace while it plays (hand-over included, waits for the learner not)
                 "collector_env_steps_per_second": round(loop.new_env_steps / max(loop.playing_seconds, 1e-9), 2)}
        log(f"done: {rates['env_steps_per_second']} env steps/s, {rates['updates_per_second']} updates/s, "
            f"{rates['targets_per_second']} Bellman targets/s; restarts {self.restarts}"
            + (f"; final checkpoint {Path(final).name}" if final else ""))
        startup = None if self.first_step_at is None else round(self.first_step_at - self.command_began, 1)
        if self.method == "qtopt":
            algo = {"offline_only": s.offline_only, "scripted_success": scripted, "scripted_noise": SCRIPTED_NOISE}
        else:  # the learner's priorities that reached the replay (a restarted replay counts from 0)
            algo = {"priority_updates": self._online_stats().get("priority_updates")}
        p.interrupted = interrupted  # finish() says so in summary.json and raises KeyboardInterrupt again
        return p.finish({"task": s.task, "preset": s.preset, "method": self.method, **algo,
                         "demos": s.demos, "seed": s.seed, "distributed": True, "collectors": len(self.collectors),
                         "bellman_updaters": len(self.updaters), "restarts": dict(self.restarts),
                         "placement": self.placement, "updates_this_run": loop.new_updates, "bellman_targets": loop.targets,
                         "startup_seconds": startup, **rates}, loop.updates)


class _Loop:
    """The driver's event loop: keeps every collector busy, ``batches_in_flight`` batches on
    their way through an updater to the learner, and evaluates every ``eval_every`` env steps
    (updates, offline only); reacts to every actor's death as the module docstring says."""

    def __init__(self, run: _Run, p: TrainingRun, logger: RunLogger, scripted: float, updates: int):
        self.r, self.p, self.logger, self.scripted = run, p, logger, scripted
        self.ray, self.s, self.d, self.cfg = run.ray, run.settings, run.dist, run.cfg
        self.updates = updates
        self.weights = run.learner.weights.remote()
        self.weights_at = updates
        self.collecting: dict[Any, int] = {}  # episode ref -> collector index
        self.updating: dict[Any, tuple[list, Any, int | None]] = {}  # update ref -> (batch parts, label ref, updater)
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
        ref = self.r.collectors[i].episode.remote(self.weights, f"episode_{k:06d}", train_seed(self.s.seed, k))
        self.collecting[ref] = i

    def sample(self) -> list:
        b = self.cfg.batch_size
        if self.r.offline is None:  # one prioritised replay, the demos in it
            return [self.r.online.sample.remote(b)]
        online = 0 if self.s.offline_only or self.p.env_steps == 0 else round((1 - self.cfg.replay_demo_fraction) * b)
        parts = [self.r.offline.sample.remote(b - online)]
        return parts + ([self.r.online.sample.remote(online)] if online else [])

    def submit_update(self, parts: list, updater: int | None = None) -> None:
        label = None
        if self.r.updaters:
            if updater is None:
                updater, self.next_updater = self.next_updater, (self.next_updater + 1) % len(self.r.updaters)
            label = self.r.updaters[updater].label.remote(self.weights, *parts)
            ref = self.r.learner.update.remote(label)
        else:
            ref = self.r.learner.update.remote(*parts)
        self.updating[ref] = (parts, label, updater)

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
        i = self.collecting.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            self.r.restarts["collector"] += 1
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
        parts, label, updater = self.updating.pop(ref)
        try:
            m = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            if not all(self._ok(part) for part in parts):  # a replay server died: Ray restarts it from its bags
                self.r.log("a replay server died while sampling; Ray restarts it from its bags, a new batch is drawn")
                self.submit_update(self.sample(), updater)
                return
            if label is not None and not self._ok(label):
                self.r.restarts["bellman_updater"] += 1
                self.r.log(f"Bellman updater {updater} died; its batch is labelled again by the restarted one")
                self.r.wait_until_up(self.r.updaters[updater], f"Bellman updater {updater}")
                self.submit_update(parts, updater)
                return
            self.learner_died(parts)
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
        if label is not None:
            self.targets += self.cfg.batch_size
        if self.updates - self.weights_at >= self.d.weights_every:
            self.weights, self.weights_at = self.r.learner.weights.remote(), self.updates

    def _ok(self, ref) -> bool:
        try:
            self.ray.get(ref)
            return True
        except self.ray.exceptions.RayActorError:
            return False

    def learner_died(self, parts: list | None = None) -> None:
        """Wait for Ray's restart (from the newest checkpoint), then send its batches (``parts``:
        the one whose failure told) again."""
        self.r.restarts["learner"] += 1
        pending = ([parts] if parts else []) + [q for q, _, _ in self.updating.values()]
        self.updating.clear()
        pending = [q if all(self._ok(part) for part in q) else self.sample() for q in pending]
        self.r.wait_until_up(self.r.learner, "the learner")
        resumed = self.ray.get(self.r.learner.resumed.remote())
        self.updates = resumed["updates"] if resumed else 0
        self.r.log(f"the learner died; Ray restarted it from its newest checkpoint (update {self.updates}); "
                   f"{len(pending)} batches in flight are sent again")
        self.weights, self.weights_at = self.r.learner.weights.remote(), self.updates
        for q in pending:
            self.submit_update(q)
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
            busy = set(self.collecting.values())
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
        """The episodes and batches under way at the end: counted when they finish."""
        while self.collecting or self.updating:
            ready, _ = self.ray.wait(list(self.collecting) + list(self.updating), num_returns=1, timeout=60)
            if not ready:
                break
            for ref in ready:
                if ref in self.collecting:
                    self.on_episode(ref)
                else:
                    self.on_update(ref)
