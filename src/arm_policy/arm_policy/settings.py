"""What `arm train --inprocess` and `arm benchmark` take: one dataclass each, the one source of
their command-line options (:mod:`arm_policy.settings_cli`), their checks and the config.json /
benchmark.json they write. No torch import here, so `arm --help` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .agents import AGENTS

if TYPE_CHECKING:
    from arm_sim.environment import ExpertNoise

__all__ = ["BenchmarkSettings", "TrainSettings", "check_task", "expert_noise"]


def check_task(task: str, method: str) -> None:
    """ValueError unless ``method`` (a registered agent) learns ``task``: the ARM family the eight
    keyframe tasks, an agent with its own ``tasks`` (QT-Opt: grasp_bin) those."""
    from arm_sim.tasks import QTOPT_TASK_NAMES, TASK_NAMES

    from .agents import agent_class

    known = TASK_NAMES + QTOPT_TASK_NAMES
    if task not in known:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(known)}")
    tasks = agent_class(method).tasks or TASK_NAMES
    if task not in tasks:
        raise ValueError(f"method {method!r} does not learn {task!r}; it learns {', '.join(tasks)}")


def expert_noise(settings) -> ExpertNoise:
    """The demos' :class:`arm_sim.environment.ExpertNoise` of a Train- or BenchmarkSettings
    (ValueError when out of range)."""
    from arm_sim.environment import ExpertNoise

    return ExpertNoise(place_m=settings.place_noise_cm / 100, grasp_m=settings.grasp_noise_cm / 100)


def _check_collision_checking(collision_checking: bool, tasks: list[str]) -> None:
    """ValueError for --no-collision-checking on grasp_bin: QT-Opt's short Cartesian steps meet
    the bin physically already; there is no planning around the scene to turn off."""
    from arm_sim.tasks import QTOPT_TASK_NAMES

    if not collision_checking and any(t in QTOPT_TASK_NAMES for t in tasks):
        raise ValueError("--no-collision-checking is the ARM authors' action mode for the keyframe "
                         f"tasks; {', '.join(QTOPT_TASK_NAMES)} moves in short Cartesian steps without a planner")


def _check_final_eval(episodes: int, methods: list[str]) -> None:
    """ValueError for a negative final_eval_episodes, or one asked of QT-Opt, whose evaluation
    is on held-out objects with its own loop (train_qtopt)."""
    if episodes < 0:
        raise ValueError(f"final_eval_episodes must be >= 0 (0: none), got {episodes}")
    if episodes and "qtopt" in methods:
        raise ValueError("--final-eval-episodes is the keyframe agents' (arm, sac, bc); QT-Opt "
                         "evaluates on held-out objects in its own loop")


@dataclass
class TrainSettings:
    """What `arm train --inprocess` takes; saved in config.json next to the agent's config."""

    task: str = "reach_target"  # task name (see `arm tasks`)
    preset: str = "cpu"  # agent preset: cpu or paper
    method: str = "arm"  # a registered agent (arm_policy.agents): arm, sac (no Q-attention), bc (demos only)
    demos: int = 100  # expert demonstrations to record (the paper gives every method 100)
    minutes: float = 30.0  # wall-clock budget, the final evaluation included
    out: str = "runs/train"  # run folder
    seed: int = 0  # seed of the first demo and of the agent; training seeds follow
    episode_length: int = 10  # agent steps (next-best poses) before an episode is cut
    updates_per_step: int = 4  # gradient updates per environment step
    eval_every: int = 100  # environment steps between evaluations
    eval_episodes: int = 25  # episodes per evaluation (fixed scenes, no exploration)
    final_eval_episodes: int = 0  # after the budget, the final agent once more on this many fixed scenes (the curve's first among them): summary.json's final_eval. 25 scenes give a success rate near 0.75 within about +-0.09 (one standard error), 200 within +-0.03; 0: none (keyframe tasks in process)
    checkpoint_every: int = 500  # updates between checkpoints
    keep_checkpoints: int = 5  # newest checkpoints kept on disk
    agent_overrides: dict = field(default_factory=dict)  # ARMConfig fields changed from the preset
    demo_dir: str = ""  # where the demo bags are (recorded there if missing); default OUT/demos
    place_noise_cm: float = 0.0  # demos: the expert's carry ends this far off in x and y (normal std, at most twice it), its release where the exact expert's is; 0: RLBench's exact expert (arm demos --help)
    grasp_noise_cm: float = 0.0  # demos: the expert's grasp this far off across the fingers (normal std, at most twice it), each release placing the object, not the hand, where the exact expert's would; 0: RLBench's exact expert (arm demos --help)
    device: str = "auto"  # cpu, cuda or auto (CUDA when present); the simulator stays on the CPU
    offline_only: bool = False  # QT-Opt: learn from the scripted grasps only (the paper's offline run)
    collision_checking: bool = True  # plan around the scene; --no-collision-checking: the ARM authors' RLBench action mode (plans ignore the scene, a move stopped short is no failure)
    tray: str = "full"  # QT-Opt's tray (grasp_bin): full (the paper's bin, 5-10 objects), one_box (one box right below the gripper's start) or one_box_low (the same box, the gripper 10 cm above the floor)

    def __post_init__(self) -> None:
        from .config import PRESETS

        if self.method not in AGENTS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(AGENTS)}")
        check_task(self.task, self.method)
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        if self.demos < 1:
            raise ValueError(f"demos must be at least 1, got {self.demos}")
        expert_noise(self)
        _check_final_eval(self.final_eval_episodes, [self.method])
        _check_collision_checking(self.collision_checking, [self.task])
        from arm_sim.grasp_bin import check_tray

        check_tray(self.tray, self.task)


@dataclass
class BenchmarkSettings:
    """What ``arm benchmark`` takes; saved as OUT/benchmark.json."""

    tasks: list[str] = field(default_factory=lambda: ["pick_up_cup", "take_lid_off_saucepan"])  # task names, or all
    methods: list[str] = field(default_factory=lambda: ["arm", "sac", "bc"])  # registered agents (the paper's Fig. 6: arm, sac, bc)
    demos: int = 100  # demos per task, shared by its cells
    minutes: float = 30.0  # training budget per cell (demo recording is shared and not counted)
    seeds: int = 1  # seeds per (task, method): 0 .. seeds-1
    jobs: int = 1  # cells side by side, one torch thread each
    threads: int = 0  # torch threads per cell (0: one with --jobs > 1, torch's default with --jobs 1); two benchmarks side by side on two cores want --threads 1 each
    out: str = "runs/benchmark"  # benchmark folder
    preset: str = "cpu"  # agent preset: cpu or paper
    eval_every: int = 100  # environment steps between evaluations
    eval_episodes: int = 25  # episodes per evaluation
    final_eval_episodes: int = 0  # after each cell's budget, its final agent on this many fixed scenes: results.csv's final_eval_success (see arm train --help); 0: none
    checkpoint_every: int = 500  # updates between checkpoints
    agent_overrides: dict = field(default_factory=dict)  # ARMConfig overrides for every cell (FIELD=VALUE)
    collision_checking: bool = True  # plan around the scene; --no-collision-checking: the ARM authors' RLBench action mode (see arm train --help)
    place_noise_cm: float = 0.0  # the shared demos: the expert's carry ends this far off in x and y, its release where the exact expert's is (see arm train --help); 0: RLBench's exact expert
    grasp_noise_cm: float = 0.0  # the shared demos: the expert's grasp this far off across the fingers, its releases placing the object (see arm train --help); 0: RLBench's exact expert

    def __post_init__(self) -> None:
        from arm_sim.tasks import TASK_NAMES

        if self.tasks == ["all"]:
            self.tasks = list(TASK_NAMES)
        bad = [m for m in self.methods if m not in AGENTS]
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; valid: {', '.join(AGENTS)}")
        for task in self.tasks:
            for method in self.methods:
                check_task(task, method)
        from .config import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        _check_collision_checking(self.collision_checking, self.tasks)
        _check_final_eval(self.final_eval_episodes, self.methods)
        if self.seeds < 1 or self.jobs < 1 or self.demos < 1 or self.minutes <= 0:
            raise ValueError("seeds, jobs and demos must be >= 1 and minutes > 0")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: the default), got {self.threads}")
        expert_noise(self)
