"""The node list: presets, params files, argument resolution, and the launch files built from it."""
from __future__ import annotations

import ast
import importlib.util
import py_compile
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from arm_bringup import nodes, params_files
from arm_bringup.nodes import ArgumentError, resolve

PKG_DIR = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PKG_DIR / "launch").glob("*.launch.py"))


def by_name(specs):
    return {s.name: s for s in specs}


def test_sim_runs_sim_perception_control_with_the_documented_executables():
    specs = resolve("sim")
    assert [(s.package, s.executable, s.name) for s in specs] == [
        ("arm_sim", "sim_node", "sim_node"),
        ("arm_perception", "perception_node", "perception_node"),
        ("arm_control", "control_node", "control_node"),
    ]
    assert all(s.params_files == [str(params_files.config_dir() / "sim.yaml")] for s in specs)
    assert all(s.parameters == {} for s in specs)  # nothing overrides the file by default


def test_defaults_come_from_the_params_file():
    d = nodes.argument_defaults("sim")
    assert d["task"] == "reach_target" and d["image_size"] == "128"
    assert d["real_time"] == "true" and d["camera_rate"] == "20.0" and d["record"] == "false"
    assert d["params_file"].endswith("config/sim.yaml")


def test_arguments_resolve_into_typed_parameters_of_every_target():
    specs = by_name(resolve("sim", ["task:=pick_up_cup", "image_size:=64", "camera_rate:=30",
                                    "real_time:=false", "control_node.planner:=PRM"]))
    assert specs["sim_node"].parameters == {"task": "pick_up_cup", "image_size": 64,
                                            "camera_rate": 30.0, "real_time": False}
    assert specs["perception_node"].parameters == {"image_size": 64}
    assert specs["control_node"].parameters == {"planner": "PRM"}
    # a string parameter stays a string even when it reads as a number
    assert resolve("sim", {"task": "123"})[0].parameters["task"] == "123"
    assert isinstance(resolve("sim", {"camera_rate": "20"})[0].parameters["camera_rate"], float)


@pytest.mark.parametrize("arg, match", [
    ("bogus:=1", "unknown launch argument 'bogus'.*valid: task"),
    ("image_size:=big", "expected an integer"),
    ("real_time:=maybe", "true or false"),
    ("camera_rate:=fast", "expected a number"),
    ("nobody.x:=1", "unknown launch argument"),
    ("task=reach_target", "name:=value"),
    ("record:=perhaps", "true or false"),
])
def test_bad_arguments_are_reported(arg, match):
    with pytest.raises(ArgumentError, match=match):
        resolve("sim", [arg])


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ArgumentError, match="valid: sim, real"):
        resolve("nope")


def test_record_adds_the_recorder_and_bag_dir_sets_its_output():
    specs = by_name(resolve("sim", ["record:=true", "bag_dir:=/tmp/b"]))
    assert specs["recorder"].package == "arm_bringup"
    assert specs["recorder"].executable == "recorder"
    assert specs["recorder"].parameters == {"output_dir": "/tmp/b"}


def test_a_custom_params_file_is_not_overridden_by_argument_defaults(tmp_path):
    custom = tmp_path / "mine.yaml"
    custom.write_text("sim_node:\n  ros__parameters:\n    task: stack_wine\n    image_size: 96\n")
    specs = by_name(resolve("sim", [f"params_file:={custom}", "seed:=7"]))
    assert specs["sim_node"].params_files == [str(custom)]
    assert specs["sim_node"].parameters == {"seed": 7}  # task/image_size stay the file's
    assert nodes.argument_defaults("sim", custom)["task"] == "stack_wine"
    with pytest.raises(ArgumentError, match="does not exist"):
        resolve("sim", [f"params_file:={tmp_path / 'missing.yaml'}"])


def test_real_params_hold_realsense_topics_joint_names_controller_and_extrinsics():
    specs = by_name(resolve("real"))
    assert set(specs) == {"perception_node", "control_node"}
    params = params_files.load_params_file(specs["control_node"].params_files[0])
    per, ctl = params["perception_node"], params["control_node"]
    assert per["color_topic"] == "/camera/camera/color/image_raw"
    assert per["depth_topic"] == "/camera/camera/aligned_depth_to_color/image_raw"
    assert per["camera_info_topic"] == "/camera/camera/color/camera_info"
    assert ctl["joint_names"] == [f"panda_joint{i}" for i in range(1, 8)]
    assert ctl["trajectory_topic"] == "/panda_arm_controller/joint_trajectory"
    extr = per["camera_extrinsics"]
    assert len(extr) == 16 and all(isinstance(v, float) for v in extr)  # a double array
    m = np.array(extr).reshape(4, 4)
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-3)
    assert np.linalg.det(m[:3, :3]) > 0 and np.allclose(m[3], [0, 0, 0, 1])
    # FR3: only the params file changes
    fr3 = by_name(resolve("real", ["trajectory_topic:=/fr3_arm_controller/joint_trajectory",
                                   "control_node.joint_names:=[fr3_joint1, fr3_joint2]"]))
    assert fr3["control_node"].parameters == {
        "trajectory_topic": "/fr3_arm_controller/joint_trajectory",
        "joint_names": ["fr3_joint1", "fr3_joint2"]}


def test_sim_params_match_the_documented_parameter_names():
    params = params_files.load_params_file(params_files.config_dir() / "sim.yaml")
    assert {"task", "seed", "image_size", "camera_rate", "real_time"} <= set(params["sim_node"])
    assert {"image_size", "color_topic", "depth_topic", "camera_info_topic",
            "camera_pose_topic"} <= set(params["perception_node"])
    assert {"joint_names", "trajectory_topic", "planner", "velocity_scaling"} <= set(
        params["control_node"])
    assert params["sim_node"]["trajectory_topic"] == params["control_node"]["trajectory_topic"]


# --------------------------------------------------------------------------- launch files

def test_launch_files_compile_and_use_the_node_list_instead_of_repeating_it():
    assert {p.name for p in LAUNCH_FILES} >= {"sim.launch.py", "real.launch.py"}
    names = {v for s in nodes.PRESETS.values() for n in s.nodes
             for v in (n.package, n.executable, n.name)}
    for path in LAUNCH_FILES:
        py_compile.compile(str(path), doraise=True)
        tree = ast.parse(path.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert any(n.module == "arm_bringup.ros2_launch" for n in imports), path
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        literals = {c.value for stmt in body for c in ast.walk(stmt)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        assert not literals & names, f"{path.name} repeats {literals & names}"


class _Recorder:
    """Stands in for a launch / launch_ros class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _fake_launch_modules(monkeypatch):
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    param_desc = types.ModuleType("launch_ros.parameter_descriptions")

    class LaunchDescription(_Recorder):
        pass

    class DeclareLaunchArgument(_Recorder):
        pass

    class OpaqueFunction(_Recorder):
        pass

    class Shutdown(_Recorder):
        pass

    class Node(_Recorder):
        pass

    class ParameterValue(_Recorder):
        pass

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.OpaqueFunction = OpaqueFunction
    actions.Shutdown = Shutdown
    ros_actions.Node = Node
    param_desc.ParameterValue = ParameterValue
    launch.actions = actions
    launch_ros.actions = ros_actions
    launch_ros.parameter_descriptions = param_desc
    for name, mod in {"launch": launch, "launch.actions": actions, "launch_ros": launch_ros,
                      "launch_ros.actions": ros_actions,
                      "launch_ros.parameter_descriptions": param_desc}.items():
        monkeypatch.setitem(sys.modules, name, mod)


def _run_launch_file(path: Path, given: dict[str, str]):
    """Mimic `ros2 launch FILE k:=v`: given args are set first, entities run in order."""
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    context = types.SimpleNamespace(launch_configurations=dict(given))
    declared, nodes_out = {}, []
    for entity in ld.args[0]:
        kind = type(entity).__name__
        if kind == "DeclareLaunchArgument":
            name = entity.args[0]
            declared[name] = entity.kwargs
            context.launch_configurations.setdefault(name, entity.kwargs["default_value"])
        elif kind == "OpaqueFunction":
            fn = entity.kwargs["function"]
            out = fn(context, *entity.kwargs.get("args", []))
            nodes_out += list(out or [])
    return declared, nodes_out


@pytest.mark.parametrize("preset", ["sim", "real"])
def test_launch_file_declares_every_argument_and_builds_nodes_from_the_list(
        monkeypatch, preset):
    _fake_launch_modules(monkeypatch)
    path = PKG_DIR / "launch" / f"{preset}.launch.py"
    declared, built = _run_launch_file(path, {})
    assert list(declared) == [a.name for a in nodes.PRESETS[preset].arguments]
    assert all(d["description"] for d in declared.values())
    expected = resolve(preset)
    assert [(n.kwargs["package"], n.kwargs["executable"], n.kwargs["name"]) for n in built] == \
        [(s.package, s.executable, s.name) for s in expected]
    for node, spec in zip(built, expected):
        assert node.kwargs["parameters"] == [*spec.params_files, {}]
        assert node.kwargs["remappings"] == spec.remappings
        assert type(node.kwargs["on_exit"]).__name__ == "Shutdown"


def test_sim_launch_file_resolves_arguments_like_arm_launch(monkeypatch, tmp_path):
    _fake_launch_modules(monkeypatch)
    _, built = _run_launch_file(PKG_DIR / "launch" / "sim.launch.py",
                                {"image_size": "64", "record": "true", "task": "123"})
    built = {n.kwargs["name"]: n for n in built}
    assert set(built) == {"sim_node", "perception_node", "control_node", "recorder"}
    sim_params = built["sim_node"].kwargs["parameters"][1]
    assert sim_params["image_size"] == 64
    task = sim_params["task"]  # strings are wrapped so launch_ros keeps them strings
    assert type(task).__name__ == "ParameterValue" and task.args == ("123",)
    assert task.kwargs == {"value_type": str}
    # a custom params file given to the launch file keeps its values (defaults do not override)
    custom = tmp_path / "c.yaml"
    custom.write_text("sim_node:\n  ros__parameters:\n    task: stack_wine\n")
    _, built = _run_launch_file(PKG_DIR / "launch" / "sim.launch.py",
                                {"params_file": str(custom)})
    assert built[0].kwargs["parameters"] == [str(custom), {}]


# --------------------------------------------------------------------------- arm launch CLI

def test_arm_launch_cli_usage_errors_show_args_and_print(capsys):
    from arm_bringup import cli

    assert cli.main(["launch", "nope"]) == 2
    assert "sim" in capsys.readouterr().err
    assert cli.main(["launch", "sim", "bogus:=1"]) == 2
    assert "unknown launch argument 'bogus'" in capsys.readouterr().err
    assert cli.main(["launch", "sim", "--show-args"]) == 0
    out = capsys.readouterr().out
    assert "'task':" in out and "(default: 'reach_target'; sets sim_node.task)" in out
    # options before or after the arguments
    assert cli.main(["launch", "sim", "--print", "task:=stack_wine", "record:=true"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == \
        ["sim_node", "perception_node", "control_node", "recorder"]
    assert "-r __node:=sim_node --params-file " in lines[0]
    assert lines[0].endswith("-p task:=stack_wine")


# --------------------------------------------------------------------------- sim_train

SIM_TRAIN_NODES = ["sim_node", "perception_node", "control_node", "recorder", "training_node",
                   "policy_node", "episode_runner"]


def _file_params(specs):
    return params_files.load_params_file(specs[0].params_files[0])


def test_sim_train_runs_the_seven_nodes_and_only_the_trainer_respawns():
    specs = resolve("sim_train")
    assert [s.name for s in specs] == SIM_TRAIN_NODES
    assert [(s.package, s.executable) for s in specs] == [
        ("arm_sim", "sim_node"), ("arm_perception", "perception_node"),
        ("arm_control", "control_node"), ("arm_bringup", "recorder"),
        ("arm_policy", "training_node"), ("arm_policy", "policy_node"),
        ("arm_bringup", "episode_runner")]
    assert [s.name for s in specs if s.respawn] == ["training_node"]
    assert all(s.params_files == [str(params_files.config_dir() / "sim_train.yaml")] for s in specs)
    assert all(s.parameters == {} for s in specs)


def test_sim_train_params_are_consistent_across_nodes():
    from arm_policy.config import PRESETS as AGENT_PRESETS

    params = _file_params(resolve("sim_train"))
    runner = params["episode_runner"]
    size = AGENT_PRESETS[runner["preset"]].image_size
    assert runner["preset"] == params["training_node"]["preset"] == "cpu" and size == 64
    assert params["sim_node"]["image_size"] == params["perception_node"]["image_size"] == \
        runner["image_size"] == size
    run_dir = runner["run_dir"]
    assert params["training_node"]["run_dir"] == params["policy_node"]["run_dir"] == run_dir
    assert params["recorder"]["output_dir"] == f"{run_dir}/bags"
    assert params["sim_node"]["task"] == params["training_node"]["task"] == runner["task"]
    assert params["policy_node"]["episode_length"] == params["training_node"]["episode_length"] \
        == runner["episode_length"] == 10
    assert params["training_node"]["min_demos"] == runner["demos"] == 100  # the paper's number
    assert runner["minutes"] == 30.0 and params["sim_node"]["real_time"] is True
    # the recorder keeps what the trainer turns into transitions (docs/design.md contract)
    from arm_bringup.episode_runner import RECORDED

    assert set(RECORDED) - {"/arm/episode"} <= set(params["recorder"]["topics"])
    assert {"/arm/next_best_pose", "/arm/gripper_goal"} <= set(params["recorder"]["topics"])


def test_sim_train_arguments_reach_every_node_that_needs_them():
    specs = by_name(resolve("sim_train", ["run_dir:=/tmp/r", "image_size:=32", "minutes:=1.5",
                                          "task:=pick_up_cup", "episode_length:=3",
                                          "demos:=2", "preset:=paper"]))
    for name in ("episode_runner", "training_node", "policy_node"):
        assert specs[name].parameters["run_dir"] == "/tmp/r"
    assert specs["recorder"].parameters == {"output_dir": "/tmp/r/bags"}
    for name in ("sim_node", "perception_node", "episode_runner"):
        assert specs[name].parameters["image_size"] == 32
    for name in ("episode_runner", "training_node", "policy_node"):
        assert specs[name].parameters["episode_length"] == 3
    for name in ("sim_node", "training_node", "episode_runner"):
        assert specs[name].parameters["task"] == "pick_up_cup"
    assert specs["episode_runner"].parameters["minutes"] == 1.5
    assert specs["training_node"].parameters["preset"] == "paper"
    assert nodes.argument_defaults("sim_train")["run_dir"] == "runs/sim_train"
    assert "recorder.output_dir as '{}/bags'" in nodes.describe_arguments("sim_train")
    qtopt = by_name(resolve("sim_train", ["algo:=qtopt", "task:=grasp_bin", "tray:=one_box"]))
    for name in ("sim_node", "training_node", "episode_runner"):  # one tray for scenes, scripted grasps and their reader
        assert qtopt[name].parameters["tray"] == "one_box"


def test_sim_train_launch_file_respawns_the_trainer_and_ends_with_the_others(monkeypatch):
    _fake_launch_modules(monkeypatch)
    declared, built = _run_launch_file(PKG_DIR / "launch" / "sim_train.launch.py",
                                       {"run_dir": "/tmp/r", "minutes": "2"})
    assert list(declared) == [a.name for a in nodes.PRESETS["sim_train"].arguments]
    built = {n.kwargs["name"]: n for n in built}
    assert list(built) == SIM_TRAIN_NODES
    trainer = built.pop("training_node").kwargs
    assert trainer["respawn"] is True and "on_exit" not in trainer
    assert trainer["respawn_max_retries"] == 10
    assert all(type(n.kwargs["on_exit"]).__name__ == "Shutdown" for n in built.values())
    assert built["recorder"].kwargs["parameters"][1]["output_dir"].args == ("/tmp/r/bags",)
    assert built["episode_runner"].kwargs["parameters"][1]["minutes"] == 2.0


def test_sim_train_algo_qtopt_runs_the_same_nodes_from_qtopts_own_params_file():
    from arm_bringup.episode_runner import RECORDED_QTOPT
    from arm_policy.agents.qtopt.config import QTOptConfig

    specs = resolve("sim_train", ["algo:=qtopt"])
    assert [s.name for s in specs] == SIM_TRAIN_NODES
    assert all(s.params_files == [str(params_files.config_dir() / "sim_train_qtopt.yaml")] for s in specs)
    assert [s.name for s in resolve("sim_train_qtopt")] == SIM_TRAIN_NODES
    params = _file_params(specs)
    runner = params["episode_runner"]
    assert runner["algo"] == "qtopt" and params["training_node"]["agent"] == "qtopt"
    assert params["sim_node"]["task"] == params["training_node"]["task"] == runner["task"] == "grasp_bin"
    assert params["sim_node"]["image_size"] == params["perception_node"]["image_size"] == \
        runner["image_size"] == QTOptConfig().image_size
    assert params["training_node"]["min_demos"] == runner["demos"]
    assert runner["episode_length"] == params["policy_node"]["episode_length"] == 20  # QT-Opt's limit
    assert set(RECORDED_QTOPT) - {"/arm/episode"} <= set(params["recorder"]["topics"])
    assert params["control_node"]["gripper_when_blocked"] is True
    # the variant takes the other arguments; algo:=arm leads back
    assert by_name(resolve("sim_train", ["algo:=qtopt", "minutes:=2"]))["episode_runner"].parameters == \
        {"minutes": 2.0}
    assert resolve("sim_train_qtopt", ["algo:=arm"])[0].params_files == \
        [str(params_files.config_dir() / "sim_train.yaml")]
    with pytest.raises(ArgumentError, match="algo:='dqn': choose from arm, qtopt"):
        resolve("sim_train", ["algo:=dqn"])


def test_sim_train_launch_file_with_algo_qtopt_builds_qtopts_graph(monkeypatch):
    _fake_launch_modules(monkeypatch)
    declared, built = _run_launch_file(PKG_DIR / "launch" / "sim_train.launch.py",
                                       {"algo": "qtopt", "run_dir": "/tmp/q"})
    assert "algo" in declared
    built = {n.kwargs["name"]: n for n in built}
    assert list(built) == SIM_TRAIN_NODES
    qtopt_yaml = str(params_files.config_dir() / "sim_train_qtopt.yaml")
    assert all(n.kwargs["parameters"][0] == qtopt_yaml for n in built.values())


def test_a_launch_with_a_run_folder_writes_one_configuration_every_node_reads(tmp_path):
    import json

    import yaml

    from arm_bringup.run_config import use_run_config

    run = tmp_path / "run"
    specs = nodes.resolve("sim_train", {"run_dir": str(run), "task": "pick_up_cup",
                                        "training_node.checkpoint_every": "7"})
    used = use_run_config("sim_train", specs)
    written = json.loads((run / "config.json").read_text())["config"]
    assert written["launch"] == "sim_train"
    assert written["nodes"]["sim_node"]["task"] == written["nodes"]["training_node"]["task"] == "pick_up_cup"
    assert written["nodes"]["training_node"]["checkpoint_every"] == 7
    assert written["nodes"]["recorder"]["output_dir"] == f"{run}/bags"
    params = yaml.safe_load((run / "params.yaml").read_text())
    assert {n: p["ros__parameters"] for n, p in params.items()} == written["nodes"]
    for spec in used:  # the run's file is each node's only parameter source
        assert spec.params_files == [str(run / "params.yaml")] and spec.parameters == {}
    sim_only = nodes.resolve("sim", {})
    assert use_run_config("sim", sim_only) == sim_only  # no run folder: nothing written, nothing changed
