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

from arm_policy.agents.qtopt import config as qc, network as qn
from arm_sim import grasp_bin as gb
from probe_state import extend_state

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_qtopt_tray.py"

BLIND = "--blind" in sys.argv
if BLIND:
    sys.argv.remove("--blind")
for module in (qn, qc):  # the state grows from [aperture, height] to [aperture, height, dx, dy]
    module.STATE_SIZE = 4
bin_observe = gb.GraspBinEnv.observe


def observe(self):
    obs = bin_observe(self)
    box = self.sim.data.xpos[self.objects[0].body_id][:2]
    obs.box_offset = (box - obs.gripper_position[:2]) / 0.1
    if BLIND:  # the image carries nothing: the offset is all Q sees of the box
        obs.rgb = np.zeros_like(obs.rgb)
    return obs


gb.GraspBinEnv.observe = observe
extend_state("box_offset", lambda obs: obs.box_offset)
sys.argv[0] = str(BENCH)
runpy.run_path(sys.argv[0], run_name="__main__")
