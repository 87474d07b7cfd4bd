"""The node list: which nodes each launch configuration runs, and its launch arguments.

This module is the single source of the ROS graph's bringup. Two launch paths read it:

* ``arm launch NAME [arg:=value ...]`` (machines with only the ROS 2 wheels): :func:`resolve`
  turns the preset and the arguments into :class:`NodeSpec` s, and
  :mod:`arm_bringup.launcher` runs each as its own process.
* ``ros2 launch arm_bringup NAME.launch.py [arg:=value ...]`` (machines with a full ROS 2
  install): ``launch/NAME.launch.py`` calls :func:`arm_bringup.ros2_launch.ros2_launch_description`,
  which declares the same arguments and, at launch time, calls the same :func:`resolve` and turns
  every spec into a ``launch_ros.actions.Node``.

Parameter values live in ONE place per preset: ``config/<preset>.yaml`` (standard ROS 2 params
file, ``node_name: {ros__parameters: {...}}``), handed to every node. A launch argument names the
parameters it sets (``image_size`` -> ``sim_node.image_size`` and ``perception_node.image_size``);
its default is the value in that file, and an argument you do not give leaves the file's value
alone (so ``params_file:=my.yaml`` is not silently overridden by defaults). Besides the declared
arguments, ``NODE.PARAM:=value`` sets any parameter of a node of the preset.

Values are parsed as YAML (like ``ros2 launch``/``ros2 param``) and then fitted to the type of
the value in the params file: ``camera_rate:=20`` becomes 20.0 where the file holds a float
(ROS refuses an int for a double parameter), ``task:=123`` stays the string '123'. Reading the
params files and fitting the values is :mod:`arm_bringup.params_files`.

Example::

    from arm_bringup.nodes import resolve
    for spec in resolve("sim", ["task:=pick_up_cup", "image_size:=64"]):
        print(spec.name, spec.parameters)
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .params_files import (PACKAGE, ArgumentError, config_dir, file_value, fit_value, load_params_file,
                           parse_bool, to_text)

__all__ = [
    "ArgumentError",
    "LaunchArgument",
    "NodeSpec",
    "PRESETS",
    "Preset",
    "argument_defaults",
    "describe_arguments",
    "parse_arg_overrides",
    "resolve",
]


@dataclass
class NodeSpec:
    """One node of a launch: what ``launch_ros.actions.Node`` gets, and what the launcher runs.

    ``parameters`` are the overrides applied after the params files (``-p k:=v`` on the command
    line; a dict after the YAML path in ``Node(parameters=[...])``). ``remappings`` are
    ``(from, to)`` pairs. ``respawn``: restart after ``respawn_delay`` seconds when it exits
    (otherwise its exit stops the whole launch), at most ``respawn_max_retries`` times (-1: no
    limit). ``condition``: the name of a boolean launch argument that must be true for the node
    to run (None: always runs).
    """

    package: str
    executable: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    respawn: bool = False
    respawn_delay: float = 2.0
    respawn_max_retries: int = -1
    params_files: list[str] = field(default_factory=list)
    condition: str | None = None


@dataclass(frozen=True)
class LaunchArgument:
    """``name:=value`` on the command line.

    ``targets``: the ``(node_name, parameter)`` pairs the value is written to, or
    ``(node_name, parameter, template)`` where the value is written as ``template.format(value)``
    (``run_dir:=runs/x`` -> the recorder's ``output_dir`` ``runs/x/bags`` with ``"{}/bags"``);
    with targets the default is read from the params file for the first target (``default``
    stays None). Arguments without targets (``params_file``, ``record``) carry their own
    ``default`` and are used by :func:`resolve`.
    """

    name: str
    description: str
    targets: tuple[tuple[str, ...], ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class Preset:
    """A launch configuration: its nodes, its arguments and its params file (in config/)."""

    name: str
    description: str
    params_file: str
    nodes: tuple[NodeSpec, ...]
    arguments: tuple[LaunchArgument, ...]
    #: ``(argument, value, preset)``: ``argument:=value`` launches that configuration instead
    #: (``sim_train algo:=qtopt`` is ``sim_train_qtopt``), with its own params file
    variants: tuple[tuple[str, str, str], ...] = ()

    def argument(self, name: str) -> LaunchArgument:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        raise KeyError(name)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.nodes)


# ----------------------------------------------------------------------------- the node list

def _sim_node() -> NodeSpec:
    return NodeSpec("arm_sim", "sim_node", "sim_node")


def _perception_node() -> NodeSpec:
    return NodeSpec("arm_perception", "perception_node", "perception_node")


def _control_node() -> NodeSpec:
    return NodeSpec("arm_control", "control_node", "control_node")


def _recorder() -> NodeSpec:
    return NodeSpec("arm_bringup", "recorder", "recorder", condition="record")


def _policy_node() -> NodeSpec:
    return NodeSpec("arm_policy", "policy_node", "policy_node")


def _training_node() -> NodeSpec:
    # Respawned: killed or crashed, it resumes from its newest checkpoint and the bags, while
    # the actor keeps acting on the last weights it loaded.
    # A crash loop ends after 10 restarts instead of running out the budget.
    return NodeSpec("arm_policy", "training_node", "training_node", respawn=True,
                    respawn_delay=2.0, respawn_max_retries=10)


def _episode_runner() -> NodeSpec:
    # Not respawned: its exit 0 at the end of the budget ends the whole launch.
    return NodeSpec("arm_bringup", "episode_runner", "episode_runner")


def _params_file_arg(preset: str) -> LaunchArgument:
    return LaunchArgument(
        "params_file",
        f"ROS 2 params file handed to every node ({PACKAGE}'s config/{preset}.yaml by default)",
        default=f"config/{preset}.yaml",
    )


_RECORD_ARGS = (
    LaunchArgument("record", "true: also run the recorder (one MCAP bag per episode)",
                   default="false"),
    LaunchArgument("bag_dir", "where the recorder writes its episode bags",
                   targets=(("recorder", "output_dir"),)),
)

SIM = Preset(
    name="sim",
    description="MuJoCo simulator driver + perception + control (sim_node, perception_node, "
                "control_node)",
    params_file="sim.yaml",
    nodes=(_sim_node(), _perception_node(), _control_node(), _recorder()),
    arguments=(
        LaunchArgument("task", "task to simulate (see `arm tasks`)", (("sim_node", "task"),)),
        LaunchArgument("tray", "grasp_bin's tray: full, one_box or one_box_low", (("sim_node", "tray"),)),
        LaunchArgument("seed", "scene seed of the first reset", (("sim_node", "seed"),)),
        LaunchArgument("image_size", "camera width and height in pixels",
                       (("sim_node", "image_size"), ("perception_node", "image_size"))),
        LaunchArgument("camera_rate", "camera frames per simulated second",
                       (("sim_node", "camera_rate"),)),
        LaunchArgument("real_time", "true: simulate in real time; false: as fast as possible",
                       (("sim_node", "real_time"),)),
        LaunchArgument("planner", "OMPL planner of the control node",
                       (("control_node", "planner"),)),
        LaunchArgument("velocity_scaling", "fraction of the arm's velocity/acceleration limits",
                       (("control_node", "velocity_scaling"),)),
        _params_file_arg("sim"),
        *_RECORD_ARGS,
    ),
)

REAL = Preset(
    name="real",
    description="perception + control against a RealSense camera and a ros2_control "
                "JointTrajectoryController (start their drivers separately)",
    params_file="real.yaml",
    nodes=(_perception_node(), _control_node(), _recorder()),
    arguments=(
        LaunchArgument("image_size", "network input size: camera images are resized to it",
                       (("perception_node", "image_size"),)),
        LaunchArgument("trajectory_topic", "the JointTrajectoryController's command topic",
                       (("control_node", "trajectory_topic"),)),
        LaunchArgument("planner", "OMPL planner of the control node",
                       (("control_node", "planner"),)),
        LaunchArgument("velocity_scaling", "fraction of the arm's velocity/acceleration limits",
                       (("control_node", "velocity_scaling"),)),
        _params_file_arg("real"),
        *_RECORD_ARGS,
    ),
)

_ALGO_ARG = LaunchArgument("algo", "arm: ARM's next-best poses (the eight tasks); qtopt: QT-Opt's "
                           "closed-loop grasping (task grasp_bin, its own params file "
                           "sim_train_qtopt.yaml)", default="arm")

SIM_TRAIN = Preset(
    name="sim_train",
    description="the whole learning loop on one machine: sim_node, perception_node, "
                "control_node, recorder (one bag per episode), training_node (respawned), "
                "policy_node and the episode_runner, whose exit at the end of the budget ends it",
    params_file="sim_train.yaml",
    nodes=(_sim_node(), _perception_node(), _control_node(),
           dataclasses.replace(_recorder(), condition=None),  # the trainer's data: always on
           _training_node(), _policy_node(), _episode_runner()),
    arguments=(
        LaunchArgument("task", "task to learn (see `arm tasks`)",
                       (("episode_runner", "task"), ("sim_node", "task"),
                        ("training_node", "task"))),
        LaunchArgument("tray", "grasp_bin's tray (algo qtopt): full (the paper's bin), one_box "
                       "(one box right below the gripper's start) or one_box_low (the same box, the gripper 10 cm above the floor)",
                       (("episode_runner", "tray"), ("sim_node", "tray"), ("training_node", "tray"))),
        LaunchArgument("run_dir", "run folder: demos/, bags/, checkpoints/, metrics.csv, "
                       "learning_curve.png, attention/, summary.json; an existing one is resumed",
                       (("episode_runner", "run_dir"), ("training_node", "run_dir"),
                        ("policy_node", "run_dir"), ("recorder", "output_dir", "{}/bags"))),
        LaunchArgument("minutes", "wall-clock budget, final evaluation included (0: no limit)",
                       (("episode_runner", "minutes"),)),
        LaunchArgument("episodes", "training episodes of the run (0: no limit)",
                       (("episode_runner", "episodes"),)),
        LaunchArgument("preset", "agent preset (cpu: 64x64 images, paper: 128x128; set "
                       "image_size to match)",
                       (("training_node", "preset"), ("episode_runner", "preset"))),
        LaunchArgument("image_size", "camera width and height: simulator, perception and demos",
                       (("sim_node", "image_size"), ("perception_node", "image_size"),
                        ("episode_runner", "image_size"))),
        LaunchArgument("demos", "expert demos recorded into the run folder first",
                       (("episode_runner", "demos"), ("training_node", "min_demos"))),
        LaunchArgument("episode_length", "agent steps (next-best poses) per episode",
                       (("episode_runner", "episode_length"), ("policy_node", "episode_length"),
                        ("training_node", "episode_length"))),
        LaunchArgument("eval_every", "training env steps between evaluations",
                       (("episode_runner", "eval_every"),)),
        LaunchArgument("eval_episodes", "episodes per evaluation (no exploration)",
                       (("episode_runner", "eval_episodes"),)),
        LaunchArgument("seed", "first demo seed; training episode i uses seed + 10000 + i",
                       (("episode_runner", "seed"),)),
        LaunchArgument("real_time", "true: simulate in real time; false: as fast as possible",
                       (("sim_node", "real_time"),)),
        _ALGO_ARG,
        _params_file_arg("sim_train"),
    ),
    variants=(("algo", "qtopt", "sim_train_qtopt"),),
)

SIM_TRAIN_QTOPT = dataclasses.replace(
    SIM_TRAIN,
    name="sim_train_qtopt",
    description="QT-Opt's learning loop on one machine (`sim_train algo:=qtopt`): sim_node "
                "(grasp_bin), perception_node, control_node (short moves), recorder, "
                "training_node (agent qtopt), policy_node (one move per step) and the "
                "episode_runner (scripted offline grasps first, held-out evaluations)",
    params_file="sim_train_qtopt.yaml",
    arguments=tuple(
        dataclasses.replace(a, default="qtopt") if a.name == "algo" else
        _params_file_arg("sim_train_qtopt") if a.name == "params_file" else
        dataclasses.replace(a, description="scripted offline grasps recorded into the run folder "
                                           "first (the trainer waits for all of them)")
        if a.name == "demos" else
        dataclasses.replace(a, description="at most this many closed-loop steps per episode "
                                           "(QT-Opt: 20)")
        if a.name == "episode_length" else a
        for a in SIM_TRAIN.arguments),
    variants=(("algo", "arm", "sim_train"),),
)

#: Launch configurations by name.
PRESETS: dict[str, Preset] = {
    "sim": SIM,
    "real": REAL,
    "sim_train": SIM_TRAIN,
    "sim_train_qtopt": SIM_TRAIN_QTOPT,
}


# ----------------------------------------------------------------------------- defaults

def _default_params_file(preset: Preset) -> Path:
    return config_dir() / preset.params_file


def argument_defaults(preset: str | Preset,
                      params_file: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """argument -> default as text (from the params file for parameter arguments)."""
    preset = _preset(preset)
    path = Path(params_file) if params_file else _default_params_file(preset)
    params = load_params_file(path)
    out = {}
    for arg in preset.arguments:
        if arg.name == "params_file":
            out[arg.name] = str(path)
        elif arg.targets:
            node, param = arg.targets[0][:2]
            value = file_value(params, node, param)
            out[arg.name] = "" if value is None else to_text(value)
        else:
            out[arg.name] = arg.default or ""
    return out


# ----------------------------------------------------------------------------- resolving

def parse_arg_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["task:=x", "image_size:=64"]`` -> ``{"task": "x", "image_size": "64"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ArgumentError(f"bad launch argument {item!r}: expected name:=value")
        out[name.strip()] = value
    return out


def _preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ArgumentError(
            f"unknown launch configuration {preset!r}; valid: {', '.join(PRESETS)}"
        ) from None


def resolve(preset: str | Preset,
            args: Mapping[str, str] | Iterable[str] = ()) -> list[NodeSpec]:
    """The preset's nodes with ``arg:=value`` overrides resolved into their parameters.

    ``args``: a mapping or ``name:=value`` strings; only arguments given explicitly override
    the params file. Every returned spec has ``params_files=[<params file>]`` and the
    overridden values, typed, in ``parameters``; nodes whose condition is false are left out.
    Raises :class:`ArgumentError` for unknown arguments (naming the valid ones) or bad values.
    """
    preset = _preset(preset)
    given = dict(args) if isinstance(args, Mapping) else parse_arg_overrides(args)
    declared = {a.name: a for a in preset.arguments}
    node_names = set(preset.node_names)
    for name, value, other in preset.variants:
        if name in given:
            choices = {declared[name].default} | {v for n, v, _ in preset.variants if n == name}
            if given[name] not in choices:
                raise ArgumentError(f"launch argument {name}:={given[name]!r}: choose from "
                                    f"{', '.join(sorted(choices))}")
            if given[name] == value:
                return resolve(other, {k: v for k, v in given.items() if k != name})

    for name in given:
        node = name.split(".", 1)[0]
        if name not in declared and not ("." in name and node in node_names):
            raise ArgumentError(
                f"unknown launch argument {name!r} for {preset.name}; valid: "
                f"{', '.join(declared)} (or NODE.PARAMETER:=value with NODE one of "
                f"{', '.join(preset.node_names)})"
            )

    params_path = Path(given["params_file"]) if given.get("params_file") else \
        _default_params_file(preset)
    params_path = Path(os.path.abspath(params_path.expanduser()))
    file_params = load_params_file(params_path)

    enabled: dict[str, bool] = {}
    for template in preset.nodes:
        cond = template.condition
        if cond is not None and cond not in enabled:
            enabled[cond] = parse_bool(cond, given.get(cond, declared[cond].default or "false"))

    overrides: dict[str, dict[str, Any]] = {n: {} for n in node_names}
    for name, text in given.items():
        if name in declared:
            for node, param, *template in declared[name].targets:
                value = template[0].format(text) if template else text
                overrides[node][param] = fit_value(name, value, file_value(file_params, node, param))
        elif "." in name:
            node, param = name.split(".", 1)
            overrides[node][param] = fit_value(name, text, file_value(file_params, node, param))

    specs = []
    for template in preset.nodes:
        if template.condition is not None and not enabled.get(template.condition, False):
            continue
        specs.append(dataclasses.replace(
            template,
            parameters={**template.parameters, **overrides[template.name]},
            remappings=list(template.remappings),
            params_files=[*template.params_files, str(params_path)],
        ))
    return specs


def describe_arguments(preset: str | Preset,
                       params_file: str | os.PathLike[str] | None = None) -> str:
    """``--show-args`` text: every argument with its default and what it sets."""
    preset = _preset(preset)
    defaults = argument_defaults(preset, params_file)
    lines = [f"Arguments of {preset.name} (pass as name:=value):"]
    for arg in preset.arguments:
        lines.append(f"    '{arg.name}':")
        lines.append(f"        {arg.description}")
        sets = ", ".join(f"{t[0]}.{t[1]}" + (f" as {t[2]!r}" if len(t) > 2 else "")
                         for t in arg.targets)
        lines.append(f"        (default: '{defaults[arg.name]}'" + (f"; sets {sets})" if sets else ")"))
    lines.append("    'NODE.PARAMETER': any parameter of "
                 + ", ".join(s.name for s in preset.nodes))
    return "\n".join(lines)
