"""The in-process trainer closes the loop: demos recorded, transitions trained, evaluations
logged, checkpoints loadable by a fresh agent, and a run folder a person can read."""
import json

import numpy as np
import pytest

from arm_policy.agents import ARMAgent, from_checkpoint
from arm_policy.checkpoints import load_latest_valid
from arm_policy.run_log import read_metrics
from arm_policy.rollout import SimRollout, expert_scene, run_episode, sim_observation, summarise, trace_line
from arm_policy.train_inprocess import TrainSettings, evaluate_checkpoints, train


def test_a_tiny_run_leaves_a_complete_run_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    settings = TrainSettings(task="reach_target", demos=2, minutes=0.25, out=str(run), eval_every=5,
                             eval_episodes=2, updates_per_step=1, checkpoint_every=5,
                             agent_overrides={"image_size": 32, "batch_size": 8},
                             collision_checking=False, final_eval_episodes=3)
    lines = []
    summary = train(settings, log=lines.append)

    assert summary["env_steps"] > 0 and summary["updates"] >= summary["env_steps"]
    assert 0.0 <= summary["eval_success"] <= 1.0
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["eval_success"] == summary["eval_success"] and on_disk["wall_seconds"] > 0
    # --final-eval-episodes: the final agent once more on 3 scenes, the curve's 2 the first of them
    wide = on_disk["final_eval"]
    assert wide["eval_episodes"] == 3 and 0 <= wide["eval_attention_on_keyframe"] <= 1
    on_two, on_three = round(2 * summary["eval_success"]), round(3 * wide["eval_success"])
    assert on_two <= on_three <= on_two + 1
    assert any(line.startswith("final evaluation on 3 scenes: success") for line in lines), lines[-3:]
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["train"]["task"] == "reach_target" and config["agent"]["image_size"] == 32
    assert config["train"]["collision_checking"] is False  # the action mode it trained in
    assert len(list((run / "demos" / "reach_target").glob("seed_*"))) == 2
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert list((run / "attention").glob("*.png"))
    evals = [r for r in read_metrics(run) if "eval_success" in r]
    assert len(evals) >= 2
    for row in evals:  # every evaluation says which part of the agent was off
        assert 0 <= row["eval_attention_on_keyframe"] <= 1 and 0 <= row["eval_unexecutable"] <= 1
        assert row["eval_attention_error_px"] >= 0 and row["eval_pose_error_cm"] >= 0
        assert 0 <= row["eval_keyframes_matched"] <= 1

    checkpoint = load_latest_valid(run)
    assert checkpoint is not None and checkpoint.step == summary["updates"]
    agent = from_checkpoint(checkpoint.state)
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("reach_target")
    _, obs = task.reset(seed=0)
    pixel, action, q_map = agent.act(sim_observation(obs, 0, settings.episode_length), explore=False)
    task.close()
    assert q_map.shape == (32, 32) and np.all((0 <= pixel) & (pixel < 32))
    assert action.shape == (8,) and abs(np.linalg.norm(action[3:7]) - 1) < 1e-4

    # `arm evaluate RUN --all`: each kept checkpoint re-evaluated on the same scenes, with a line per scene
    lines = []
    results = evaluate_checkpoints(run, episodes=2, every_checkpoint=True, log=lines.append)
    assert [r["updates"] for r in results] == sorted(r["updates"] for r in results)
    assert len(results) == min(len(list((run / "checkpoints").glob("step_*.pt"))), settings.keep_checkpoints)
    assert results[-1]["updates"] == summary["updates"]
    assert sum("scene" in line for line in lines) == 2 * len(results)
    # ... in the run's own action mode unless told otherwise
    from arm_sim import environment

    modes, made = [], environment.Environment.__init__
    monkeypatch.setattr(environment.Environment, "__init__",
                        lambda self, *a, **k: (modes.append(k["collision_checking"]), made(self, *a, **k))[1])
    evaluate_checkpoints(run, episodes=1, log=lambda line: None)
    evaluate_checkpoints(run, episodes=1, log=lambda line: None, collision_checking=True)
    assert modes == [False, True]
    # ... and deciding with the critic's pick near the actor's pose (--greedy-refine)
    from arm_policy.agents.arm import ARMAgent

    refined, real = [], ARMAgent._refined
    monkeypatch.setattr(ARMAgent, "_refined",
                        lambda self, *a: (refined.append(self.cfg.greedy_refine_samples), real(self, *a))[1])
    assert evaluate_checkpoints(run, episodes=1, log=lambda line: None,
                                greedy_refine=(16, 0.5))[0]["eval_episodes"] == 1
    assert refined and set(refined) == {16}

    # `arm plot`: runs side by side in one PNG
    import subprocess

    png = tmp_path / "side_by_side.png"
    done = subprocess.run(["arm", "plot", f"ARM={run}", f"again={run}", "--out", str(png)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_a_run_refuses_demos_recorded_with_another_expert_noise(tmp_path):
    demos = tmp_path / "demos" / "stack_wine"
    demos.mkdir(parents=True)
    (demos / "recording.json").write_text('{"place_noise_m": 0.015}')  # kept before grasp noise was
    with pytest.raises(ValueError, match="recorded with place noise 1.5 cm, grasp noise 0 cm, not place noise 0 cm"):
        train(TrainSettings(task="stack_wine", out=str(tmp_path / "run"), demo_dir=str(tmp_path / "demos")),
              log=lambda line: None)
    with pytest.raises(ValueError, match="not place noise 1.5 cm, grasp noise 0.7 cm; pass those"):
        train(TrainSettings(task="stack_wine", out=str(tmp_path / "run"), demo_dir=str(tmp_path / "demos"),
                            place_noise_cm=1.5, grasp_noise_cm=0.7), log=lambda line: None)


def test_arm_evaluate_names_what_is_missing(tmp_path):
    import subprocess

    done = subprocess.run(["arm", "evaluate", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert done.returncode == 1 and "nowhere" in done.stderr and "config.json" in done.stderr
    done = subprocess.run(["arm", "evaluate", str(tmp_path), "--greedy-refine", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "--greedy-refine 1 must be at least 2" in done.stderr
    done = subprocess.run(["arm", "plot", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "nowhere has no metrics.csv" in done.stderr


def test_an_episode_reports_each_parts_distance_from_the_expert_keyframe():
    """An agent that attends to the expert's keyframe pixel and goes to its pose has both errors
    ~0 and succeeds; the report is what tells a failing run's attention from its pose agent."""
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("reach_target")

    class Expert:  # stands in for ARMAgent.act with the scripted expert's answer
        def act(self, o, explore):
            px = expert_scene(task, obs).first_pixel
            pose = task.task.expert(task.sim)[0].pose
            return px, np.r_[pose, 1.0].astype(np.float32), np.zeros((32, 32))

    _, obs = task.reset(seed=3)
    result = run_episode(SimRollout(task, Expert(), 2), seed=3, explore=False, episode_length=2)
    assert result.success and result.outcome == "success"
    assert result.attention_error_px == 0 and result.pose_error_m < 1e-6

    class Wrong(Expert):
        def act(self, o, explore):
            px, action, q = super().act(o, explore)
            return px + 5, action + np.r_[0.0, 0.0, 0.3, np.zeros(5)].astype(np.float32), q

    result = run_episode(SimRollout(task, Wrong(), 2), seed=3, explore=False, episode_length=2)
    task.close()
    assert not result.success and result.outcome != "success"
    assert abs(result.attention_error_px - np.hypot(5, 5)) < 1e-6
    assert abs(result.pose_error_m - 0.3) < 1e-5


def test_a_multi_step_episode_reports_how_many_expert_keyframes_it_matched_in_order():
    """pick_up_cup's expert has three keyframes (above, grasp, lift): its own poses match all
    three; the same poses with the gripper never closing stall after the first."""
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("pick_up_cup")

    class Expert:  # plays the scene's scripted keyframes as next-best poses
        def __init__(self, keep_open=False):
            self.keep_open, self.step = keep_open, 0

        def act(self, o, explore):
            if self.step == 0:
                self.waypoints = task.task.expert(task.sim)
            wp = self.waypoints[min(self.step, len(self.waypoints) - 1)]
            self.step += 1
            gripper = 1.0 if self.keep_open else wp.gripper
            return np.zeros(2, int), np.r_[wp.pose, gripper].astype(np.float32), np.zeros((32, 32))

    expert = run_episode(SimRollout(task, Expert(), 5), seed=4, explore=False, episode_length=5)
    stalled = run_episode(SimRollout(task, Expert(keep_open=True), 5), seed=4, explore=False, episode_length=5)
    task.close()
    assert expert.success and (expert.keyframes_matched, expert.keyframes) == (3, 3)
    assert not stalled.success and (stalled.keyframes_matched, stalled.keyframes) == (1, 3)
    assert summarise([expert, stalled])["eval_keyframes_matched"] == (1 + 1 / 3) / 2


def test_later_decisions_on_the_experts_path_report_whether_attention_stayed_on_its_keyframes():
    """pick_up_cup's expert poses, attending to each keyframe's own pixel: both later decisions
    (grasp, lift) are on the path and on their keyframes; the same poses attending 5 px away from
    the second keyframe on: 0 of 2. Off the path (the first pose 10 cm too high), later decisions
    do not count. ``on_step`` sees each decision with the keyframe it should make."""
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("pick_up_cup")

    class Expert:
        def __init__(self, astray=False, miss_first=False):
            self.astray, self.miss_first, self.step = astray, miss_first, 0

        def act(self, o, explore):
            if self.step == 0:
                self.waypoints = task.task.expert(task.sim)
                self.pixels = expert_scene(task, obs).pixels
            k = min(self.step, len(self.waypoints) - 1)
            self.step += 1
            px = self.pixels[k] + (5 if self.astray and k > 0 else 0)
            pose = self.waypoints[k].pose + (np.r_[0, 0, 0.1, 0, 0, 0, 0] if self.miss_first and k == 0 else 0)
            return px, np.r_[pose, self.waypoints[k].gripper].astype(np.float32), np.zeros((32, 32))

    _, obs = task.reset(seed=4)
    steps = []
    on = run_episode(SimRollout(task, Expert(), 4), seed=4, explore=False, episode_length=4,
                     on_step=steps.append)
    astray = run_episode(SimRollout(task, Expert(astray=True), 4), seed=4, explore=False, episode_length=4)
    off_path = run_episode(SimRollout(task, Expert(miss_first=True), 4), seed=4, explore=False, episode_length=4)
    task.close()
    assert on.success and (on.later_decisions, on.later_on_keyframe) == (2, 2)
    assert astray.success and (astray.later_decisions, astray.later_on_keyframe) == (2, 0)
    assert (off_path.later_decisions, off_path.later_on_keyframe) == (0, 0)
    assert [(s.step, s.keyframe, s.on_path) for s in steps] == [(0, 0, True), (1, 1, True), (2, 2, True)]
    assert np.array_equal(steps[1].keyframe_pixel, steps[1].decision.pixel)
    assert "expert keyframe 1" in trace_line(steps[1]) and "close: reached" in trace_line(steps[1])
    assert summarise([on, astray])["eval_attention_on_later_keyframes"] == 0.5
    assert "eval_attention_on_later_keyframes" not in summarise([off_path])


def test_the_first_grasp_is_measured_against_the_experts_along_the_gripper_axes():
    """The diagnosis of the keyframe most tasks are tightest at: pick_up_cup's expert with its
    grasp moved 1 cm across the fingers and 0.5 cm up reports exactly that; one that never
    closes the hand reports no grasp, and an evaluation of such episodes has no grasp keys."""
    from arm_control.transforms import ACROSS_FINGERS, quat_xyzw_to_mat
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("pick_up_cup")

    class Expert:
        def __init__(self, grasp_offset=np.zeros(3), keep_open=False):
            self.grasp_offset, self.keep_open, self.step = grasp_offset, keep_open, 0

        def act(self, o, explore):
            if self.step == 0:
                self.waypoints = task.task.expert(task.sim)
            wp = self.waypoints[min(self.step, len(self.waypoints) - 1)]
            self.step += 1
            pose = wp.pose.copy()
            if wp.gripper <= 0.5 and self.step == 2:  # the grasp
                across = quat_xyzw_to_mat(pose[3:])[:, ACROSS_FINGERS]
                pose[:3] += 0.01 * across + [0.0, 0.0, 0.005]
            return np.zeros(2, int), np.r_[pose, 1.0 if self.keep_open else wp.gripper].astype(np.float32), np.zeros((32, 32))

    moved = run_episode(SimRollout(task, Expert(), 4), seed=4, explore=False, episode_length=4)
    never_closed = run_episode(SimRollout(task, Expert(keep_open=True), 4), seed=4, explore=False,
                               episode_length=4)
    task.close()
    assert np.allclose(moved.grasp_error_cm, (1.0, 0.0, 0.5), atol=1e-4)
    assert never_closed.grasp_error_cm is None
    summary = summarise([moved, never_closed])
    assert (summary["eval_grasp_error_across_cm"], summary["eval_grasp_height_bias_cm"]) == pytest.approx((1.0, 0.5), abs=1e-4)
    assert summary["eval_grasp_error_along_cm"] == pytest.approx(0.0, abs=1e-4)
    assert not any(k.startswith("eval_grasp") for k in summarise([never_closed]))


def test_each_transition_names_the_next_decisions_pixel_and_a_cut_bootstraps():
    """The critic's next crop is cut where the agent looked next; the last transition of an
    episode cut by its step limit is a timeout, its next pixel the attention's choice there."""
    from arm_policy.config import preset
    from arm_sim.environment import Environment

    cfg = preset("cpu", image_size=32, batch_size=8)
    agent = ARMAgent(cfg, [[0.2, -0.3, 0.8], [0.6, 0.3, 1.2]], device="cpu", seed=0)
    pixels, act = [], agent.act

    def recording_act(obs, explore):
        out = act(obs, explore)
        pixels.append(out[0])
        return out

    agent.act = recording_act
    transitions = []
    task = Environment(image_size=(32, 32)).get_task("pick_and_lift")  # not solved by chance
    run_episode(SimRollout(task, agent, 3), seed=3, explore=True, episode_length=3,
                on_transition=transitions.append)
    task.close()
    assert len(transitions) >= 1
    for i, t in enumerate(transitions[:-1]):
        assert np.array_equal(t["next_pixel"], pixels[i + 1]) and not t["terminal"]
    last = transitions[-1]
    assert last["terminal"]
    if last["timeout"]:  # cut after 3 poses: one more look at the last observation
        assert len(transitions) == 3 and len(pixels) == 4
        assert np.array_equal(last["next_pixel"], pixels[-1]) and last["reward"] == 0.0
    else:  # an unexecutable pose: reward 0, the end
        assert last["reward"] == 0.0 and np.array_equal(last["next_pixel"], last["pixel"])


def test_a_numerical_failure_ends_the_run_with_the_reason_and_no_poisoned_checkpoint(tmp_path):
    """Same guard as the ROS training node (both are the one Learner): a huge learning rate blows
    Q-attention up; the run stops, says why in summary.json, and its checkpoints stay finite."""
    import pytest
    import torch

    from arm_policy.checkpoints import list_checkpoints, load_checkpoint
    from arm_policy.learner import TrainingFailed

    run = tmp_path / "run"
    settings = TrainSettings(task="reach_target", demos=2, minutes=0.5, out=str(run), eval_every=50,
                             eval_episodes=1, updates_per_step=2, checkpoint_every=1,
                             agent_overrides={"image_size": 32, "batch_size": 8, "attention_lr": 1e30})
    with pytest.raises(TrainingFailed, match="non-finite"):
        train(settings, log=lambda line: None)
    summary = json.loads((run / "summary.json").read_text())
    assert "non-finite" in summary["error"] and summary["updates"] < 10
    for path in list_checkpoints(run):
        state = load_checkpoint(path)
        assert state["updates"] <= summary["updates"]  # the failing update is summary["updates"] + 1
        assert all(torch.isfinite(v).all() for v in state["attention"].values() if torch.is_tensor(v))


def test_ctrl_c_ends_an_in_process_run_with_a_checkpoint_and_an_interrupted_summary(tmp_path, ctrl_c):
    import sys

    cmd = [sys.executable, "-m", "arm_bringup.cli", "train", "--inprocess", "--task", "reach_target", "--demos", "2",
           "--minutes", "10", "--eval-every", "1000", "--eval-episodes", "1", "--updates-per-step", "1",
           "--out", str(tmp_path), "--agent-overrides", "image_size=32", "batch_size=8"]
    code, output = ctrl_c(cmd, after="(untrained)")  # the first evaluation is done: it trains now
    assert code == 130, output[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["evaluations"] == 1 and summary["untrained_success"] >= 0
    checkpoint = load_latest_valid(tmp_path)
    assert checkpoint is not None and checkpoint.step == summary["updates"]


@pytest.mark.parametrize("how", ["arm train", "a benchmark's cell"])
def test_kill_stops_a_run_as_ctrl_c_does_and_its_replay_stays_for_the_resume(tmp_path, ctrl_c, how):
    """SIGTERM (`kill`, and how a benchmark stops its cells) writes a last checkpoint, marks
    summary.json interrupted and keeps the agent's transitions on disk: a benchmark's cell used
    to delete them on the way out, and resumed learning from the demos alone."""
    import dataclasses
    import signal
    import sys

    from arm_policy.replay_files import ReplayFiles

    settings = TrainSettings(task="reach_target", demos=2, minutes=10, eval_every=1000, eval_episodes=1,
                             updates_per_step=1, out=str(tmp_path),
                             agent_overrides={"image_size": 32, "batch_size": 8})
    if how == "arm train":
        cmd = [sys.executable, "-m", "arm_bringup.cli", "train", "--inprocess", "--task", "reach_target",
               "--demos", "2", "--minutes", "10", "--eval-every", "1000", "--eval-episodes", "1",
               "--updates-per-step", "1", "--out", str(tmp_path), "--agent-overrides", "image_size=32", "batch_size=8"]
        stopped = 130
    else:
        cmd = [sys.executable, "-m", "arm_policy.benchmark", "--cell", json.dumps(dataclasses.asdict(settings))]
        stopped = 143
    code, output = ctrl_c(cmd, after="(untrained)", wait=8.0, signum=signal.SIGTERM)
    assert code == stopped, output[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["env_steps"] > 0, summary
    saved = load_latest_valid(tmp_path).state["learner"]["replay"]
    on_disk = sum(len(index) for index, _ in ReplayFiles(tmp_path).read(int(saved["added"])))
    assert on_disk == summary["env_steps"] == int(saved["added"]) - int(saved["demos"])
