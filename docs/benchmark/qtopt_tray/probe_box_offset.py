"""A diagnostic probe (2026-12-07), kept with its JSON lines: QT-Opt on the box-anywhere tray with
the box's xy offset from the gripper (in units of 10 cm) appended to the state, a privileged input
no real robot has. Does QT-Opt's learning work once the gripper-box relation is given, so that
perceiving that relation from the image is what is missing? It patches the agent, the bin and the
grasp-episode helpers in memory (nothing in the repository changes) and runs
bench/bench_qtopt_tray.py with the same arguments; ``--blind`` also blanks the image.

    python docs/benchmark/qtopt_tray/probe_box_offset.py --online --spread 1 --tray one_box_low \
        --image-size 48 --grasps 200 --updates 6000 --points 6 --seed 0 --agent-overrides image_shift=0
"""
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from arm_policy import grasp_episodes as ge
from arm_policy.agents.qtopt import agent as qa, config as qc, network as qn
from arm_sim import grasp_bin as gb

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_qtopt_tray.py"

BLIND = "--blind" in sys.argv
if BLIND:
    sys.argv.remove("--blind")
for module in (qa, qn, qc):  # the state grows from [aperture, height] to [aperture, height, dx, dy]
    module.STATE_SIZE = 4
bin_observe, agent_observation = gb.GraspBinEnv.observe, ge.agent_observation


def observe(self):
    obs = bin_observe(self)
    box = self.sim.data.xpos[self.objects[0].body_id][:2]
    obs.box_offset = (box - obs.gripper_position[:2]) / 0.1
    if BLIND:  # the image carries nothing: the offset is all Q sees of the box
        obs.rgb = np.zeros_like(obs.rgb)
    return obs


def observation_with_offset(obs):
    return {**agent_observation(obs), "box_offset": np.asarray(obs.box_offset, dtype=np.float32)}


def stored_state(o):
    return np.array([o["gripper_open"], o["gripper_height"], o["gripper_aperture"], *o["box_offset"]],
                    dtype=np.float32)


def agent_state(stored, config):
    s = np.asarray(stored, dtype=np.float32)
    return np.array([s[2], s[1], s[3], s[4]], dtype=np.float32)


agent_act, agent_cem = qa.QTOptAgent.act, qa.QTOptAgent._cem


def act(self, obs, explore):
    """QTOptAgent.act; its CEM gets the offset appended to the state (:func:`cem`)."""
    self.probe_offset = torch.as_tensor(obs["box_offset"], dtype=torch.float32)[None]
    return agent_act(self, obs, explore)


def cem(self, net, features, state):
    if state.shape[1] == 2:  # act's [aperture, height]; batches from the replay hold all four
        state = torch.cat([state, self.probe_offset.to(state)], dim=1)
    return agent_cem(self, net, features, state)


gb.GraspBinEnv.observe = observe
ge.agent_observation, ge.stored_state, ge.agent_state = observation_with_offset, stored_state, agent_state
qa.QTOptAgent.act, qa.QTOptAgent._cem = act, cem
sys.argv[0] = str(BENCH)
runpy.run_path(sys.argv[0], run_name="__main__")
