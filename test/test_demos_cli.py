"""`arm tasks` and `arm demos`: the recorded bags read back with rosbags and with the independent
mcap + mcap-ros2-support readers."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from arm_control.topics import TOPIC_COLOR, TOPIC_DEPTH, TOPIC_JOINT_STATES
from arm_perception.bag_reader import read_episode
from arm_sim.tasks import TASK_NAMES


def arm(*args, timeout=300):
    exe = shutil.which("arm")
    assert exe, "`arm` is not on PATH: source env.sh first"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def test_arm_tasks_prints_the_eight_names_one_per_line():
    r = arm("tasks")
    assert r.returncode == 0
    assert r.stdout.split() == list(TASK_NAMES)


def test_an_unknown_task_prints_the_valid_names_and_fails(tmp_path):
    r = arm("demos", "--task", "reach_targte", "--episodes", "1", "--out", str(tmp_path))
    assert r.returncode != 0
    assert "unknown task 'reach_targte'" in r.stderr
    assert all(name in r.stderr for name in TASK_NAMES)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    r = arm("demos", "--task", "pick_up_cup", "--episodes", "2", "--seed", "7", "--out", str(out),
            "--image-size", "32")
    assert r.returncode == 0, r.stderr
    return out, r


def test_demos_print_progress_and_end_with_one_json_line(demo_run):
    out, r = demo_run
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["task"] == "pick_up_cup" and summary["episodes"] == 2 and summary["successes"] == 2
    assert summary["seconds"] > 0
    assert "[1/2]" in r.stderr and "[2/2]" in r.stderr
    assert sorted(p.name for p in (out / "pick_up_cup").iterdir()) == ["recording.json", "seed_000007", "seed_000008"]


def test_demos_keep_how_the_expert_ran_and_refuse_to_mix_in_another_noise(demo_run):
    out, _ = demo_run
    assert json.loads((out / "pick_up_cup" / "recording.json").read_text()) == {"place_noise_m": 0.0,
                                                                              "grasp_noise_m": 0.0}
    r = arm("demos", "--task", "pick_up_cup", "--episodes", "1", "--seed", "9", "--out", str(out),
            "--image-size", "32", "--place-noise-cm", "1.5")
    assert r.returncode != 0 and "recorded with place noise 0 cm, grasp noise 0 cm, not place noise 1.5 cm" in r.stderr
    r = arm("demos", "--task", "pick_up_cup", "--episodes", "1", "--seed", "9", "--out", str(out),
            "--image-size", "32", "--grasp-noise-cm", "0.7")
    assert r.returncode != 0 and "not place noise 0 cm, grasp noise 0.7 cm" in r.stderr
    r = arm("demos", "--task", "pick_up_cup", "--episodes", "1", "--seed", "9", "--out", str(out),
            "--image-size", "32", "--place-noise-cm", "-1")
    assert r.returncode != 0 and "place noise must be within 0..5 cm, got -1 cm" in r.stderr
    assert sorted(p.name for p in (out / "pick_up_cup").iterdir()) == ["recording.json", "seed_000007", "seed_000008"]


def test_a_demo_bag_reads_back_with_rosbags_as_a_successful_20hz_episode(demo_run):
    out, _ = demo_run
    ep = read_episode(out / "pick_up_cup" / "seed_000007")
    assert ep.front_rgb.shape[1:] == (32, 32, 3) and ep.front_depth.shape[1:] == (32, 32)
    assert np.allclose(np.diff(ep.stamps), 0.05, atol=1e-6), "frames at the 20 Hz control rate"
    assert ep.success[-1] and not ep.success[0] and ep.reward[-1] == 1.0
    assert ep.gripper_open[0] and not ep.gripper_open[-1], "picked: the gripper ends closed on the cup"
    assert ep.gripper_pose[-1, 2] > ep.gripper_pose[0, 2] - 0.3


def test_a_demo_bag_reads_back_with_the_independent_mcap_reader(demo_run):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out, _ = demo_run
    bag = out / "pick_up_cup" / "seed_000008"
    (mcap_file,) = bag.rglob("*.mcap")
    counts, first_image = {}, None
    with open(mcap_file, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, _, msg in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == TOPIC_COLOR and first_image is None:
                first_image = msg
            if channel.topic == TOPIC_JOINT_STATES:
                assert len(msg.name) == 9 and len(msg.velocity) == 9
    ep = read_episode(bag)
    assert counts[TOPIC_COLOR] == counts[TOPIC_DEPTH] == len(ep.stamps)
    assert first_image.encoding == "rgb8" and (first_image.height, first_image.width) == (32, 32)
    assert bytes(first_image.data) == ep.front_rgb[0].tobytes()
