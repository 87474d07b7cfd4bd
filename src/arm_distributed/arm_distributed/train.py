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
that died resumes from its newest checkpoint (the episodes sent with the weights it never
published are lost too), the replay servers keep their data (and reload it from the bags if
they die themselves). ``lost_episodes`` in the summary names every lost episode and the death
that lost it. Ctrl-C (or SIGTERM) stops the run with a final checkpoint
and summary and ray.shutdown() stops every process of a local Ray.
"""
from __future__ import annotations

import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from arm_policy.agents import agent_config
from arm_policy.run_log import RunLogger, write_config
from arm_policy.settings import TrainSettings, expert_noise
from arm_policy.train_qtopt import SCRIPTED_NOISE, offline_folder, scripted_name
from arm_policy.training_run import TrainingRun, keep_metrics_until, stop_on_sigterm

from .cluster import ray_session
from .loop import _Loop
from .settings import DistributedSettings

__all__ = ["check_distributed", "train_distributed"]

def check_distributed(settings: TrainSettings, dist: DistributedSettings) -> None:
    """ValueError naming what a distributed run cannot do with these settings."""
    if settings.method not in ("qtopt", "arm", "sac"):
        raise ValueError(f"arm train --distributed runs qtopt, arm or sac; {settings.method!r} trains in "
                         "process (arm train --inprocess)" + (": it learns from the demos only, there is "
                                                              "nothing to collect" if settings.method == "bc" else ""))
    if settings.offline_only and settings.method != "qtopt":
        raise ValueError("--offline-only is QT-Opt's mode (training on the scripted grasps only)")
    if settings.final_eval_episodes:
        raise ValueError("--final-eval-episodes evaluates in process; on a distributed run's folder "
                         "run `arm evaluate RUN --episodes N` afterwards")
    if settings.device not in ("auto", "cpu"):
        raise ValueError("the distributed actors run on the CPU (--device cpu or auto)")
    if dist.collectors < 1 and not settings.offline_only:
        raise ValueError("online training needs --collectors >= 1 (or --offline-only)")


def train_distributed(settings: TrainSettings, dist: DistributedSettings,
                      log: Callable[[str], None] = print) -> dict:
    """Train ``settings.method`` on Ray; returns summary.json's fields."""
    check_distributed(settings, dist)
    command_began = time.monotonic()
    with ray_session(dist, log) as session:
        # after ray.init, whose own SIGTERM handler would end the process where it stands
        previous = stop_on_sigterm()
        try:
            return _Run(settings, dist, session, command_began, log).train()
        finally:
            for signum, handler in zip((signal.SIGTERM, signal.SIGINT), previous):
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


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
                             "demo_dir": str(demo_dir), "demos": settings.demos,
                             "collision_checking": settings.collision_checking, "tray": settings.tray}}
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
        from arm_sim.demos import check_recorded_noise, record_demos

        s = self.settings
        if not (demo_dir / s.task).exists():
            self.log(f"recording {s.demos} demos of {s.task} at {self.cfg.image_size}x{self.cfg.image_size}")
            record_demos(s.task, s.demos, s.seed, demo_dir, self.cfg.image_size, progress=self.log,
                         noise=expert_noise(s))
        else:
            check_recorded_noise(demo_dir / s.task, expert_noise(s),
                                 "pass those --place-noise-cm / --grasp-noise-cm or another --demo-dir")

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
            algo = {"offline_only": s.offline_only, "tray": s.tray, "scripted_success": scripted, "scripted_noise": SCRIPTED_NOISE}
        else:  # the learner's priorities that reached the replay (a restarted replay counts from 0)
            algo = {"priority_updates": self._online_stats().get("priority_updates")}
        p.interrupted = interrupted  # finish() says so in summary.json and raises KeyboardInterrupt again
        return p.finish({"task": s.task, "preset": s.preset, "method": self.method, **algo,
                         "demos": s.demos, "seed": s.seed, "distributed": True, "collectors": len(self.collectors),
                         "bellman_updaters": len(self.updaters), "restarts": dict(self.restarts),
                         "lost_episodes": dict(sorted(loop.lost.items())),
                         "placement": self.placement, "updates_this_run": loop.new_updates, "bellman_targets": loop.targets,
                         "startup_seconds": startup, **rates}, loop.updates)
