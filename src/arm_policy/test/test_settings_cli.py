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
