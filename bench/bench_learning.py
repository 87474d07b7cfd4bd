"""Learning benchmarks. One JSON object per line: name, value, unit (+ context).

Examples:
    python bench/bench_learning.py                       # updates/s and decision latency (about 3 min)
    python bench/bench_learning.py --only latency
    python bench/bench_learning.py --only reach --minutes 30   # env steps / wall time to 90% on reach_target
    python bench/bench_learning.py --only reach --run runs/reach   # the same figures from a finished run

Figures:
    updates   ARM updates per second at batch 32 and 128 for each preset (CPU; CUDA too when present)
    latency   decision latency: one 128x128 observation -> pixel + pose (act, no exploration)
    reach     a real `arm train --inprocess` run on reach_target: env steps and wall time until the
              evaluation success first reaches 90% (null if it does not within the budget)
"""
import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np


def emit(name, value, unit, **extra):
    value = None if value is None else round(float(value), 4)
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def _batch(size, batch, rng):
    s = size
    pc = lambda: rng.normal(size=(batch, s, s, 3)).astype(np.float32)  # noqa: E731
    rgb = lambda: rng.integers(0, 255, (batch, s, s, 3), dtype=np.uint8)  # noqa: E731
    return {"rgb": rgb(), "point_cloud": pc(), "low_dim": rng.normal(size=(batch, 11)).astype(np.float32),
            "pixel": rng.integers(0, s, (batch, 2)), "next_pixel": rng.integers(0, s, (batch, 2)),
            "action": np.tile(np.r_[0.45, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0], (batch, 1)).astype(np.float32),
            "reward": rng.integers(0, 2, batch).astype(np.float32), "terminal": rng.integers(0, 2, batch).astype(bool),
            "next_rgb": rgb(), "next_point_cloud": pc(), "next_low_dim": rng.normal(size=(batch, 11)).astype(np.float32),
            "demo": np.ones(batch, bool)}


BOUNDS = np.array([[0.3, -0.3, 0.78], [0.7, 0.3, 1.2]])


def bench_updates(devices, seconds=20.0):
    from arm_policy.agent import ARMAgent
    from arm_policy.config import preset

    rng = np.random.default_rng(0)
    for device in devices:
        for name in ("cpu", "paper"):
            for batch_size in (32, 128):
                cfg = preset(name, batch_size=batch_size)
                agent = ARMAgent(cfg, BOUNDS, device=device)
                batch = _batch(cfg.image_size, batch_size, rng)
                weights = np.ones(batch_size, np.float32)
                agent.update(batch, weights)  # warm-up
                n, t0 = 0, time.perf_counter()
                while n < 2 or time.perf_counter() - t0 < seconds:
                    agent.update(batch, weights)
                    n += 1
                emit(f"updates_per_second/{name}/batch{batch_size}/{device}", n / (time.perf_counter() - t0),
                     "updates/s", image_size=cfg.image_size, updates=n)


def bench_latency(devices, decisions=50):
    from arm_policy.agent import ARMAgent
    from arm_policy.config import preset

    rng = np.random.default_rng(0)
    for device in devices:
        for name in ("cpu", "paper"):
            cfg = preset(name, image_size=128)
            agent = ARMAgent(cfg, BOUNDS, device=device)
            obs = {k: v[0] for k, v in _batch(128, 1, rng).items() if k in ("rgb", "point_cloud", "low_dim")}
            agent.act(obs, explore=False)
            times = []
            for _ in range(decisions):
                t0 = time.perf_counter()
                agent.act(obs, explore=False)
                times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1000
            emit(f"decision_latency_ms/{name}_nets/128x128/{device}", np.median(ms), "ms",
                 p95=round(float(np.percentile(ms, 95)), 2), target="<= 20")


def reach_figures(run, start: float, minutes, preset_name: str) -> None:
    """Emit env steps and wall time to the first evaluation >= 90% of the run folder ``run``
    (in-process or sim_train layout: metrics.csv with step, wall_time, eval_success)."""
    from arm_policy.run_log import read_metrics

    run = pathlib.Path(run)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    first = next((r for r in read_metrics(run) if r.get("eval_success", 0) >= 0.9), None)
    extra = {"budget_minutes": minutes, "preset": preset_name, "final_eval_success": summary.get("eval_success"),
             "run": str(run)}
    emit("reach_target_env_steps_to_90pct", None if first is None else first["step"], "env steps", **extra)
    emit("reach_target_wall_seconds_to_90pct", None if first is None else first["wall_time"] - start, "s", **extra)


def bench_reach(minutes, preset_name="cpu", run=None):
    from arm_policy.train_inprocess import TrainSettings, train

    if run is not None:  # an existing run folder: its config.json is written when training starts
        config = json.loads((pathlib.Path(run) / "config.json").read_text())
        reach_figures(run, (pathlib.Path(run) / "config.json").stat().st_mtime,
                      config["train"]["minutes"], config["train"]["preset"])
        return
    with tempfile.TemporaryDirectory() as run:
        start = time.time()  # metrics.csv's wall_time is epoch seconds
        train(TrainSettings(task="reach_target", preset=preset_name, demos=10, minutes=minutes, out=run),
              log=lambda line: print(line, file=sys.stderr, flush=True))
        reach_figures(run, start, minutes, preset_name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["updates", "latency", "reach"])
    parser.add_argument("--minutes", type=float, default=30.0, help="budget of the reach figure")
    parser.add_argument("--run", help="reach figure from this finished `arm train --inprocess` run "
                        "folder instead of a new run")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per updates figure")
    args = parser.parse_args()
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.only in (None, "updates"):
        bench_updates(devices, args.seconds)
    if args.only in (None, "latency"):
        bench_latency(devices)
    if args.only == "reach":  # a half-hour run: only when asked
        bench_reach(args.minutes, run=args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
