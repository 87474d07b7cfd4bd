"""Command-line options come from the settings dataclasses: every field is an option with the
field's default and its comment as help, so a setting is written in one place."""
import argparse
import dataclasses
import subprocess
import sys

import pytest

from arm_policy.settings import BenchmarkSettings, TrainSettings
from arm_policy.settings_cli import add_options, field_comments, from_options


@pytest.mark.parametrize("cls", [TrainSettings, BenchmarkSettings])
def test_every_field_is_an_option_with_its_comment_as_help(cls):
    parser = argparse.ArgumentParser()
    add_options(parser, cls, required=("out",))
    options = {a.dest: a for a in parser._actions}
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        assert f.name in options, f"{cls.__name__}.{f.name} has no option"
        assert comments.get(f.name), f"{cls.__name__}.{f.name} has no help comment"
        assert options[f.name].help.startswith(comments[f.name])


def test_parsed_options_build_the_settings_with_typed_values():
    parser = argparse.ArgumentParser()
    add_options(parser, BenchmarkSettings, required=("out",))
    args = parser.parse_args(["--out", "runs/b", "--tasks", "pick_up_cup,stack_wine", "--minutes", "2.5",
                              "--agent-overrides", "image_size=32", "unet_filters=[8, 8]", "amp=bf16"])
    settings = from_options(BenchmarkSettings, args)
    assert settings.tasks == ["pick_up_cup", "stack_wine"] and settings.minutes == 2.5
    assert settings.agent_overrides == {"image_size": 32, "unet_filters": [8, 8], "amp": "bf16"}
    assert settings.methods == BenchmarkSettings().methods and settings.out == "runs/b"
    with pytest.raises(ValueError, match="unknown task"):
        from_options(BenchmarkSettings, parser.parse_args(["--out", "x", "--tasks", "pick_up_mug"]))


def test_arm_train_refuses_a_bad_value_by_name_without_importing_torch_for_help():
    done = subprocess.run([sys.executable, "-c", "import sys; from arm_bringup.cli import build_parser; "
                           "build_parser(); print('torch' in sys.modules)"], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    done = subprocess.run(["arm", "train", "--inprocess", "--out", "/tmp/never", "--method", "dqn"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown method 'dqn'" in done.stderr


def test_no_collision_checking_reaches_every_benchmark_cell_and_is_refused_for_the_bin():
    """--no-collision-checking (the ARM authors' RLBench action mode) goes from the benchmark to
    each cell's TrainSettings (its config.json, which `arm evaluate` reads back); grasp_bin has no
    planner to turn it off in, so asking for it there is an error, not silently ignored."""
    from arm_policy.benchmark import cell_settings, cells

    parser = argparse.ArgumentParser()
    add_options(parser, BenchmarkSettings, required=("out",))
    settings = from_options(BenchmarkSettings, parser.parse_args(
        ["--out", "runs/b", "--tasks", "stack_wine", "--methods", "arm,bc", "--no-collision-checking"]))
    assert settings.collision_checking is False
    assert all(cell_settings(settings, c).collision_checking is False for c in cells(settings))
    assert TrainSettings().collision_checking is True  # the default still plans around the scene
    with pytest.raises(ValueError, match="no-collision-checking"):
        TrainSettings(task="grasp_bin", method="qtopt", collision_checking=False)


def test_the_final_evaluation_on_more_scenes_reaches_every_cell_and_is_refused_where_it_cannot_run():
    """`--final-eval-episodes N` of a benchmark becomes each cell's; a negative N, or QT-Opt
    (which evaluates on held-out objects in its own loop), is an error before anything runs."""
    from arm_policy.benchmark import cell_settings, cells

    parser = argparse.ArgumentParser()
    add_options(parser, BenchmarkSettings, required=("out",))
    settings = from_options(BenchmarkSettings, parser.parse_args(
        ["--out", "runs/b", "--tasks", "stack_wine", "--methods", "arm,bc", "--final-eval-episodes", "200"]))
    assert [cell_settings(settings, c).final_eval_episodes for c in cells(settings)] == [200, 200]
    assert TrainSettings().final_eval_episodes == 0  # none unless asked for
    with pytest.raises(ValueError, match="final_eval_episodes must be >= 0"):
        TrainSettings(final_eval_episodes=-1)
    with pytest.raises(ValueError, match="QT-Opt"):
        TrainSettings(task="grasp_bin", method="qtopt", final_eval_episodes=100)
    with pytest.raises(ValueError, match="QT-Opt"):
        BenchmarkSettings(tasks=["grasp_bin"], methods=["qtopt"], final_eval_episodes=100)


def test_the_reports_command_line_reproduces_the_action_mode_and_overrides():
    """results.md quotes the invocation; without --no-collision-checking or the overrides it
    would name another experiment than the one whose cells it reports."""
    from arm_policy.benchmark_report import invocation

    plain = dataclasses.asdict(BenchmarkSettings(tasks=["stack_wine"], methods=["arm"], out="runs/b"))
    assert invocation(plain) == ("arm benchmark --tasks stack_wine --methods arm --demos 100 --minutes 30.0 "
                                 "--seeds 1 --jobs 1 --out runs/b --preset cpu")
    authors = dict(plain, collision_checking=False, agent_overrides={"actor_relative_xyz": False})
    assert invocation(authors).endswith(" --agent-overrides actor_relative_xyz=false --no-collision-checking")


def test_the_reports_command_line_pastes_into_a_shell_and_parses_back_to_the_same_overrides():
    """A list override printed as ``unet_filters=[16, 16, 16]`` split into three shell words."""
    import shlex

    from arm_policy.benchmark_report import invocation
    from arm_policy.settings_cli import parse_items

    overrides = {"amp": "off", "unet_filters": [16, 16, 16], "position_error_scale": 0.03,
                 "note": "1.5", "actor_relative_xyz": False}
    words = shlex.split(invocation(dataclasses.asdict(BenchmarkSettings(
        tasks=["stack_wine"], methods=["arm"], out="runs/b", agent_overrides=overrides))))
    items = words[words.index("--agent-overrides") + 1:]
    assert items == ["amp=off", "unet_filters=[16,16,16]", "position_error_scale=0.03",
                     'note="1.5"', "actor_relative_xyz=false"]
    assert parse_items(items) == overrides


def test_cells_get_threads_given_else_one_each_side_by_side_else_torchs_default():
    """Two benchmarks side by side on two cores each want one thread per cell: --threads says so
    (before, only OMP_NUM_THREADS did, and without it the cells ran ~7x slower)."""
    from arm_policy.benchmark import cell_threads
    from arm_policy.benchmark_report import invocation

    assert cell_threads(BenchmarkSettings(tasks=["reach_target"], methods=["arm"])) is None
    assert cell_threads(BenchmarkSettings(tasks=["reach_target"], methods=["arm"], jobs=2)) == 1
    one = BenchmarkSettings(tasks=["reach_target"], methods=["arm"], threads=1, out="runs/b")
    assert cell_threads(one) == 1
    assert " --jobs 1 --threads 1 --out runs/b" in invocation(dataclasses.asdict(one))
    with pytest.raises(ValueError, match="threads must be >= 0"):
        BenchmarkSettings(tasks=["reach_target"], methods=["arm"], threads=-1)


def test_expert_noise_reaches_every_cell_and_the_reports_command_line_and_is_range_checked():
    """Demos recorded with the carry's end or the grasp moved off are another experiment: each cell's
    config.json and the report's command must say so."""
    from arm_policy.benchmark import Cell, cell_settings
    from arm_policy.benchmark_report import invocation

    noisy = BenchmarkSettings(tasks=["stack_wine"], methods=["arm"], out="runs/b", place_noise_cm=1.5)
    assert cell_settings(noisy, Cell("stack_wine", "arm", 0)).place_noise_cm == 1.5
    assert " --out runs/b --preset cpu --place-noise-cm 1.5" in invocation(dataclasses.asdict(noisy))
    assert "--place-noise-cm" not in invocation(dataclasses.asdict(dataclasses.replace(noisy, place_noise_cm=0.0)))
    both = dataclasses.replace(noisy, grasp_noise_cm=0.7)
    assert cell_settings(both, Cell("stack_wine", "arm", 0)).grasp_noise_cm == 0.7
    assert "--place-noise-cm 1.5 --grasp-noise-cm 0.7" in invocation(dataclasses.asdict(both))
    for bad in (-0.5, 6.0, float("nan")):
        for what in ("place", "grasp"):
            with pytest.raises(ValueError, match=f"{what} noise must be within 0..5 cm"):
                TrainSettings(**{f"{what}_noise_cm": bad})
            with pytest.raises(ValueError, match=f"{what} noise must be within 0..5 cm"):
                BenchmarkSettings(tasks=["stack_wine"], methods=["arm"], **{f"{what}_noise_cm": bad})


def test_a_cells_command_line_parses_back_to_the_settings_it_ran_with():
    """results.md gives each cell the ``arm train`` command that makes it again: every setting
    that differs from the defaults, in the flags ``arm train`` parses."""
    import shlex

    from arm_policy.benchmark_report import train_command

    ran = TrainSettings(task="stack_wine", seed=2, minutes=85.0, out="runs/b/cells/stack_wine/arm/seed_2",
                        demo_dir="runs/b/demos", collision_checking=False, place_noise_cm=1.5,
                        eval_episodes=10, agent_overrides={"amp": "off", "unet_filters": [16, 16, 16]})
    command = train_command(dataclasses.asdict(ran))
    words = shlex.split(command)
    assert words[:3] == ["arm", "train", "--inprocess"]
    parser = argparse.ArgumentParser()
    add_options(parser, TrainSettings, required=("out",))
    assert from_options(TrainSettings, parser.parse_args(words[3:])) == ran
    assert "--device" not in words  # a default is left out ...
    assert "--task" in words and "--seed" in words  # ... but what names the cell never is


def test_a_cell_says_where_its_agent_differs_from_what_its_preset_gives_today():
    """A cell trained before a preset change is not what its command trains today: the report
    names the field, the cell's value and today's, and the fields the cell ran without."""
    from arm_policy.agents import agent_config
    from arm_policy.benchmark_report import config_against_today

    train = dataclasses.asdict(TrainSettings(task="pick_up_cup", agent_overrides={"amp": "off"}))
    today = dataclasses.asdict(agent_config("cpu", {"amp": "off"}, "arm"))
    assert config_against_today({"train": train, "agent": today}) == "same"
    older = dict(today, crop_size=today["crop_size"] + 8)
    del older["position_error_scale"]
    said = config_against_today({"train": train, "agent": older})
    assert f"crop_size {today['crop_size'] + 8} -> {today['crop_size']}" in said
    assert f"new since: position_error_scale={today['position_error_scale']!r}" in said
    gone = config_against_today({"train": dict(train, agent_overrides={"no_such_field": 1}), "agent": today})
    assert gone.startswith("not reproducible today:") and "no_such_field" in gone
