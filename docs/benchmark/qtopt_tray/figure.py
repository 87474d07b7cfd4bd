"""docs/figures/qtopt_one_box_online.png from the bench's JSON lines in docs/benchmark/qtopt_tray/."""
import json, sys
from pathlib import Path
from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])
def rows(name):
    out = []
    for line in (root / name).read_text().splitlines():
        d = json.loads(line)
        if d["name"] == "held_out_success":
            out.append({"updates": d["updates"], "eval_success": d["value"]})
    return out
def scripted(name):
    d = json.loads((root / name).read_text().splitlines()[0])
    return d["value"]
online = {s: rows(f"online_seed{s}.jsonl") for s in (0, 1, 2)}
offline = rows("offline_seed0.jsonl")
top = max(r["updates"] for r in online[0])
compare = {"online, seed 1": online[1], "online, seed 2": online[2], "offline only, seed 0": offline,
           "scripted grasps (the offline data), seed 0": [{"updates": x, "eval_success": scripted("online_seed0.jsonl")} for x in (0, top)]}
plot_learning_curve(online[0], sys.argv[2], x="updates", label="online, seed 0", compare=compare,
                    title="QT-Opt, one-box tray, 64 px, 200 scripted grasps",
                    ylabel="held-out success (20 scenes)")
