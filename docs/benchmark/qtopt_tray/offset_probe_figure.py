"""The two figures of the box-anywhere probes (48 px, the gripper 10 cm up, 200 scripted grasps,
online, seed 0 unless named; held-out success against env steps):

- docs/figures/qtopt_box_offset_probe.png: given the box's offset from the gripper in its state
  (privileged, probe_box_offset.py) QT-Opt learns the grasp; from the image alone it does not,
  with the paper's network, three more convolutions after the merge, a spatial-softmax merge, or
  an encoder taught the offset by an auxiliary loss (privileged labels, or hindsight labels from
  successful grasps).
- docs/figures/qtopt_glimpse_probe.png: a Q read where the action takes the gripper
  (probe_glimpse.py), added to the paper network's or alone, learns slowly: about the scripted
  grasps' success by 16,000 env steps, where the privileged probe is at 0.80 by 5,000.
- docs/figures/qtopt_point_probe.png: the same read from one per-pixel feature map
  (probe_point.py) learns faster at half the glimpse's update time.
- docs/figures/qtopt_point_full_bin.png: the per-pixel read (12,000 and 30,000 env steps), the
  glimpse and the paper's network on the full bin (5-10 objects).

    python docs/benchmark/qtopt_tray/offset_probe_figure.py docs/benchmark/qtopt_tray docs/figures
"""
import json
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root, figures = Path(sys.argv[1]), Path(sys.argv[2])
PRIVILEGED = "box offset in the state (privileged), seed 0"


def rows(name):
    lines = [json.loads(line) for line in (root / name).read_text().splitlines()]
    return [{"env_steps": d["env_steps"], "eval_success": d["value"]} for d in lines if d["name"] == "held_out_success"]


def figure(name, title, curves, first=(PRIVILEGED, "probe_offset_seed0.jsonl")):
    plot_learning_curve(rows(first[1]), figures / name, x="env_steps", label=first[0],
                        compare={label: rows(f) for label, f in curves.items() if (root / f).exists()},
                        title=title, ylabel="success (20 held-out scenes)")


figure("qtopt_box_offset_probe.png", "QT-Opt, one box anywhere: given the offset vs from the image", {
    "box offset in the state (privileged), seed 1": "probe_offset_seed1.jsonl",
    "the paper's network, 20,000 env steps": "probe_paper_net_20k_seed0.jsonl",
    "3 more convolutions after the merge": "probe_head_convs3_seed0.jsonl",
    "spatial-softmax merge, 6x6": "probe_keypoints6_seed0.jsonl",
    "spatial-softmax merge, 12x12": "probe_keypoints12_seed0.jsonl",
    "auxiliary offset loss on the encoder": "probe_aux_seed0.jsonl",
    "auxiliary offset, its prediction fed in, 12,000 env steps": "probe_aux_feed_12k_seed0.jsonl",
    "auxiliary offset, its prediction fed in, seed 1": "probe_aux_feed_seed1.jsonl",
    "the same with hindsight labels, seed 0": "probe_hindsight_feed_seed0.jsonl",
})
figure("qtopt_glimpse_probe.png", "QT-Opt, one box anywhere: a Q read where the action goes", {
    "box offset in the state (privileged), seed 1": "probe_offset_seed1.jsonl",
    "the paper's network, 20,000 env steps": "probe_paper_net_20k_seed0.jsonl",
    "paper's network + glimpse, seed 0": "probe_glimpse_seed0.jsonl",
    "paper's network + glimpse, seed 1": "probe_glimpse_seed1.jsonl",
    "glimpse alone, 16,000 env steps, seed 0": "probe_glimpse_only_16k_seed0.jsonl",
    "glimpse alone, 16,000 env steps, seed 1": "probe_glimpse_only_16k_seed1.jsonl",
})
figure("qtopt_point_probe.png", "QT-Opt, one box anywhere: Q read from a per-pixel map (scripted grasps 0.385)", {
    "box offset in the state (privileged), seed 1": "probe_offset_seed1.jsonl",
    "the paper's network, 20,000 env steps": "probe_paper_net_20k_seed0.jsonl",
    "glimpse alone, seed 0": "probe_glimpse_only_16k_seed0.jsonl",
    "glimpse alone, seed 1": "probe_glimpse_only_16k_seed1.jsonl",
    "per-pixel map, seed 0": "probe_point_16k_seed0.jsonl",
    "per-pixel map, seed 1": "probe_point_16k_seed1.jsonl",
})
figure("qtopt_point_full_bin.png", "QT-Opt on the full bin: Q read from a per-pixel map (scripted grasps 0.255)", {
    "per-pixel map, seed 1": "probe_full_bin_point_seed1.jsonl",
    "per-pixel map, 30,000 env steps, seed 0": "probe_full_bin_point_30k_seed0.jsonl",
    "per-pixel map, 30,000 env steps, seed 1": "probe_full_bin_point_30k_seed1.jsonl",
    "glimpse alone, seed 0": "probe_full_bin_glimpse_only_seed0.jsonl",
    "the paper's network, seed 0": "probe_full_bin_paper_net_seed0.jsonl",
}, first=("per-pixel map, seed 0", "probe_full_bin_point_seed0.jsonl"))
