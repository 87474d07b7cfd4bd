"""docs/figures/qtopt_one_box_graph.png: QT-Opt on the one-box tray without the image shift,
seed 0, on the ROS 2 graph (`arm launch sim_train algo:=qtopt`) against the same agent in process
and on Ray, held-out success against the grasps collected (training episodes): the issue's
"within 10 points of the in-process one at the same number of grasps". Seed 0 has two graph runs:
`graph/` with the policy acting on checkpoints written and reloaded every 100 updates,
`graph_fresh/` every 10; seed 1 one, `graph_seed_1/`, every 10.

    python docs/benchmark/qtopt_one_box_graph/figure.py docs/benchmark docs/figures/qtopt_one_box_graph.png
    python docs/benchmark/qtopt_one_box_graph/figure.py docs/benchmark docs/figures/qtopt_one_box_graph_seed_1.png 1
"""
import csv
import sys
from pathlib import Path

from arm_policy.plots import plot_learning_curve

root = Path(sys.argv[1])


def rows(folder, up_to=450):
    """Evaluations up to ``up_to`` grasps: the graph's runs end at 330-365, Ray's went on to 795."""
    return [{"grasps": int(r["episodes"]), "eval_success": float(r["eval_success"])}
            for r in csv.DictReader((root / folder / "metrics.csv").open())
            if r.get("eval_success") and int(r["episodes"]) <= up_to]


seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
reference = f"qtopt_one_box_inprocess_vs_ray/seed_{seed}"
graphs = ({"graph, reload 100": "graph", "graph, reload 10": "graph_fresh"} if seed == 0
          else {"graph, reload 10": f"graph_seed_{seed}"})
(first, folder), *more = graphs.items()
plot_learning_curve(rows(f"qtopt_one_box_graph/{folder}"), sys.argv[2], x="grasps", label=first,
                    compare={**{label: rows(f"qtopt_one_box_graph/{f}") for label, f in more},
                             "in process": rows(f"{reference}/inprocess"), "Ray": rows(f"{reference}/ray")},
                    title=f"QT-Opt, one-box tray, seed {seed}: graph vs in process",
                    ylabel="success (25 held-out scenes)")
