"""`bench/attention_sensitivity.py` tells a Q-attention keyed on the hand's exact pose from one
that reads the image: the measurement behind attention_low_dim_pose (docs/results/arm.md)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import attention_sensitivity as sens  # noqa: E402


def test_a_q_attention_that_reads_the_hands_height_drops_only_on_the_agents_low_dim_state():
    """A stand-in agent whose pre-grasp is 3 cm above the expert's and whose Q map is 100 while its
    low-dim state puts the hand at most 1.5 cm above the expert's pre-grasp, else 5: the drop shows
    on the agent's own input and on the expert's image with the agent's state, never on the agent's
    image with the expert's state."""
    from arm_policy.rollout import eval_seed, expert_scene
    from arm_sim.environment import Environment

    task = Environment(image_size=(32, 32)).get_task("pick_up_cup")

    class HeightKeyed:
        def act(self, o, explore):
            pre_grasp = self.pre_grasp
            q = np.full((32, 32), 100.0 if o["low_dim"][3] < pre_grasp[2] + 0.015 else 5.0)
            return SimpleNamespace(pixel=np.zeros(2, int), q_map=q,
                                   action=np.r_[pre_grasp[:3] + [0, 0, 0.03], pre_grasp[3:], 1.0].astype(np.float32))

    agent = HeightKeyed()
    rows = []
    for i in range(2):
        _, obs = task.reset(seed=eval_seed(i))
        agent.pre_grasp = np.asarray(expert_scene(task, obs).keyframes[0].pose)
        rows.append(sens.scene_sensitivity(task, agent, eval_seed(i), step=1, episode_length=10))
    task.close()
    for r in rows:
        assert r["agent_pose_off_cm"] == pytest.approx(3.0, abs=0.01)
        assert [r[k]["q_at_keyframe"] for k in sens.INPUTS] == [100.0, 5.0, 100.0, 5.0]
    s = sens.summary(rows)
    assert (s["scenes"], s["skipped"], s["expert_q_at_keyframe"], s["agent_q_at_keyframe"]) == (2, 0, 100.0, 5.0)


def test_a_folder_that_is_not_a_run_is_refused_by_name(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "attention_sensitivity.py"), str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "nowhere has no config.json" in done.stderr
    assert not [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
