"""A diagnostic probe (2026-12-07), kept with its JSON lines: the paper's Q-network on the
box-anywhere tray with an auxiliary head on its image features that regresses the box's xy offset
from the gripper (in units of 10 cm; a privileged label no real robot has), its mean squared error
added to the Q loss with weight --aux-weight. Q itself sees only [aperture, height]; with --feed
the head's prediction (detached) joins [state, action] in the embedding MLP, where
probe_box_offset.py puts the true offset. Does an encoder taught where the box is make Q use it?
With --hindsight the labels are ones a real robot has: in an episode that ended in a successful
grasp, each frame's label is where the gripper ended (x, y) minus where it is; frames of failed
episodes carry no label (left out of the auxiliary loss).
It patches the agent, the network, the bin and the grasp-episode helpers in memory (nothing in the
repository changes) and runs bench/bench_qtopt_tray.py with the other arguments; the auxiliary
loss goes to stderr every 500 updates.

    python docs/benchmark/qtopt_tray/probe_aux_offset.py --aux-weight 1 [--feed] [--hindsight] --online --spread 1 \\
        --tray one_box_low --image-size 48 --grasps 200 --updates 6000 --points 6 --seed 0 \\
        --agent-overrides image_shift=0
"""
import runpy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from arm_policy import grasp_episodes as ge
from arm_policy.agents.qtopt import agent as qa, network as qn
from arm_sim import grasp_bin as gb

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_qtopt_tray.py"

i = sys.argv.index("--aux-weight")
WEIGHT = float(sys.argv[i + 1])
del sys.argv[i:i + 2]
FEED, HINDSIGHT = "--feed" in sys.argv, "--hindsight" in sys.argv
sys.argv = [a for a in sys.argv if a not in ("--feed", "--hindsight")]
if FEED:
    qn.STATE_SIZE = 4  # the embedding MLP takes [aperture, height, predicted dx, dy] + action
qa.STATE_SIZE = 5  # the replay stores [aperture, height, dx, dy, labelled]: the last three label
bin_observe, agent_observation, transitions_of = gb.GraspBinEnv.observe, ge.agent_observation, ge.transitions_of
net_init, net_head, batch_tensors = qn.QNetwork.__init__, qn.QNetwork.head, qa.QTOptAgent.batch_tensors


def observe(self):
    obs = bin_observe(self)
    box = self.sim.data.xpos[self.objects[0].body_id][:2]
    obs.box_offset = (box - obs.gripper_position[:2]) / 0.1
    return obs


def observation_with_offset(obs):
    return {**agent_observation(obs), "box_offset": np.asarray(obs.box_offset, dtype=np.float32),
            "gripper_xy": np.asarray(obs.gripper_position[:2], dtype=np.float32)}


def stored_state(o):
    return np.array([o["gripper_open"], o["gripper_height"], o["gripper_aperture"], *o["box_offset"],
                     *o["gripper_xy"]], dtype=np.float32)


def agent_state(stored, config):
    s = np.asarray(stored, dtype=np.float32)
    return np.array([s[2], s[1]], dtype=np.float32)


def labelled_transitions(frames, config):
    """The transitions with [label dx, dy, labelled] appended to state and next_state."""
    out = transitions_of(frames, config)
    end, success = frames[-1].state[5:7], bool(frames[-2].success)
    for t, before, after in zip(out, frames[:-1], frames[1:]):
        for key, frame in (("state", before), ("next_state", after)):
            if HINDSIGHT:
                label = (end - frame.state[5:7]) / 0.1 if success else np.zeros(2)
                labelled = float(success)
            else:
                label, labelled = frame.state[3:5], 1.0
            t[key] = np.concatenate([t[key], label, [labelled]]).astype(np.float32)
    return out


def init(self, cfg):
    net_init(self, cfg)
    side = cfg.image_size // 2 ** len(cfg.conv_channels)
    self.aux = nn.Sequential(nn.Flatten(), nn.Linear(cfg.conv_channels[-1] * side * side, 64), nn.ReLU(),
                             nn.Linear(64, 2))


def head(self, features, state, action):
    if FEED:
        state = torch.cat([state, self.aux(features).detach()], dim=1)
    return net_head(self, features, state, action)


def split_batch(self, batch, weights=None):
    t = batch_tensors(self, batch, weights)
    t["aux"], t["labelled"] = t["state"][:, 2:4], t["state"][:, 4]
    t["state"], t["next_state"] = t["state"][:, :2], t["next_state"][:, :2]
    return t


def q_loss(self, t, y):
    features = self.q.encode(t["image"])
    logits = self.q.head(features, t["state"], t["action"]).float()
    squared = (self.q.aux(features) - t["aux"]).pow(2).mean(dim=1)
    aux = (t["labelled"] * squared).sum() / t["labelled"].sum().clamp_min(1.0)
    if self.updates % 500 == 0:
        print(f"update {self.updates}: aux mse {float(aux.detach()):.4f} (offset variance "
              f"{float(t['aux'].var(0).sum()):.4f}, labelled {float(t['labelled'].mean()):.2f})",
              file=sys.stderr, flush=True)
    return F.binary_cross_entropy_with_logits(logits, y) + WEIGHT * aux, logits, aux.detach()


gb.GraspBinEnv.observe = observe
ge.agent_observation, ge.stored_state, ge.agent_state = observation_with_offset, stored_state, agent_state
ge.transitions_of = labelled_transitions
qn.QNetwork.__init__, qn.QNetwork.head = init, head
qa.QTOptAgent.batch_tensors, qa.QTOptAgent._q_loss = split_batch, q_loss
sys.argv[0] = str(BENCH)
runpy.run_path(sys.argv[0], run_name="__main__")
