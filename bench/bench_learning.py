"""Learning benchmarks. One JSON object per line: name, value, unit (+ context).

Examples:
    python bench/bench_learning.py                       # speed-ups, decision latency (long: paper nets)
    python bench/bench_learning.py --only updates --presets cpu --batches 32
    python bench/bench_learning.py --only profile --presets cpu --batches 32   # where an update's time goes
    python bench/bench_learning.py --only updates --device cuda                 # on a GPU
    python bench/bench_learning.py --only latency
    python bench/bench_learning.py --only reach --minutes 30   # env steps / wall time to 90% on reach_target
    python bench/bench_learning.py --only reach --run runs/reach   # the same figures from a finished run

Figures:
    updates   one line per (preset, batch): ``updates_per_s`` of the learner step (replay sample,
              update, priority update) with the compute options (``--options``, default the
              preset's best measured where this machine gains from them: see
              ``optimised``), ``baseline_updates_per_s`` (fp32, eager, no
              option) measured in the same run, ``speedup``, and ``loss_rel_diff``: the largest
              relative difference of the Q-attention, critic and actor losses (each the mean of
              the last 10 of ``--loss-updates`` fixed-seed updates, both runs from the same
              weights and batches) against the baseline's, with its tolerance
    profile   per part of an update (torch.profiler ranges of ARMAgent.update), ms and share
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


#: the compute options each preset is measured with (ARMConfig fields); the baseline is fp32 eager
#: ("auto": bf16 autocast only on CUDA or a CPU that computes bfloat16 natively, AVX-512 BF16 or
#: AMX; an AVX2-only CPU emulates it 11x slower than fp32, so there it measures fp32 against fp32)
OPTIMISED = {"cpu": {"amp": "auto"}, "paper": {"amp": "auto"}}
BASELINE = {"amp": "off"}
#: loss_rel_diff above this fails the option set (bf16 rounds every activation to 8 mantissa bits)
LOSS_TOLERANCE = 0.05


def _replay(cfg, rng, size=256):
    """A prioritised replay holding ``size`` random transitions of ``cfg``'s image size."""
    from arm_policy.agents.arm import arm_replay_fields
    from arm_policy.replay import PrioritizedReplay

    replay = PrioritizedReplay.from_config(cfg.replace(replay_capacity=size), seed=0,
                                           fields=arm_replay_fields(cfg.image_size, cfg.low_dim_size))
    rows = _batch(cfg.image_size, size, rng)
    rows["timeout"] = np.zeros(size, bool)
    for i in range(size):
        replay.add({k: v[i] for k, v in rows.items()}, demo=bool(i % 2))
    return replay


def _agent(cfg, device, options):
    from arm_policy.agents import ARMAgent

    return ARMAgent(cfg.replace(**options), BOUNDS, device=device, seed=0)


def _learner_step(agent, replay, batch_size):
    batch, idx, weights = replay.sample(batch_size)
    metrics = agent.update(batch, weights)
    replay.update_priorities(idx, metrics.pop("priorities"))
    return metrics


def _updates_per_s(agent, replay, batch_size, seconds):
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        _learner_step(agent, replay, batch_size)
        n += 1
    return n / (time.perf_counter() - t0), n


LOSSES = ("q_attention_loss", "critic_loss", "actor_loss")


def _losses_after(cfg, device, options, batches, tail=10):
    """Each loss's mean over the last ``tail`` of ``len(batches)`` updates from seed-0 weights
    on the given batches (uniform weights)."""
    import torch

    agent = _agent(cfg, device, options)
    torch.manual_seed(1)  # the same policy noise for every option set
    rows = [agent.update(b) for b in batches][-tail:]
    return {k: float(np.mean([r[k] for r in rows])) for k in LOSSES}


def bench_updates(device, presets, batches, seconds=20.0, loss_updates=50, options=None):
    """One JSON line per (preset, batch): the optimised learner step against the fp32 eager one,
    timed alternately in rounds (so drift in machine load hits both alike)."""
    from arm_policy.config import preset

    for name in presets:
        chosen = dict(OPTIMISED[name] if options is None else options)
        for batch_size in batches:
            cfg = preset(name, batch_size=batch_size)
            rng = np.random.default_rng(0)
            replay = _replay(cfg, rng)
            agents = {"baseline": _agent(cfg, device, BASELINE), "optimised": _agent(cfg, device, chosen)}
            for agent in agents.values():  # warm-up (and compile)
                _learner_step(agent, replay, batch_size)
            totals = {k: [0, 0.0] for k in agents}
            for _ in range(3):
                for key, agent in agents.items():
                    rate, n = _updates_per_s(agent, replay, batch_size, seconds / 3)
                    totals[key][0] += n
                    totals[key][1] += n / rate
            rate = {k: n / t for k, (n, t) in totals.items()}
            fixed = [replay.sample(batch_size)[0] for _ in range(loss_updates)]
            base = _losses_after(cfg, device, BASELINE, fixed)
            losses = _losses_after(cfg, device, chosen, fixed)
            rel = max(abs(losses[k] - base[k]) / max(abs(base[k]), 1e-8) for k in LOSSES)
            print(json.dumps({
                "name": f"updates/{name}/batch{batch_size}/{device}", "preset": name,
                "batch": batch_size, "image_size": cfg.image_size, "device": device,
                "options": chosen, "amp_used": agents["optimised"].amp,
                "updates_per_s": round(rate["optimised"], 3),
                "baseline_updates_per_s": round(rate["baseline"], 3),
                "speedup": round(rate["optimised"] / rate["baseline"], 2),
                "loss_rel_diff": round(rel, 4), "loss_tolerance": LOSS_TOLERANCE,
                "loss_updates": loss_updates, "updates_timed": totals["optimised"][0],
                "threads": _threads(), **_cpu()}), flush=True)


def _cpu():
    """Which CPU the figures are from: a speedup of bf16 needs native bfloat16 (on an AVX2-only
    CPU it is emulated and bf16 is slower than fp32)."""
    import torch

    from arm_policy.agents.base import native_cpu_bf16

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_cpu_bf16()}


def _threads():
    import torch

    return torch.get_num_threads()


def bench_profile(device, presets, batches, updates=10, options=None):
    """Where a learner step's time goes: replay sampling, each part of ARMAgent.update (its
    profiler ranges), the priority update, and the rest (Python, untracked). One JSON line per
    (preset, batch) with ms per update and share of the step."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from arm_policy.config import preset

    for name in presets:
        for batch_size in batches:
            cfg = preset(name, batch_size=batch_size)
            replay = _replay(cfg, np.random.default_rng(0))
            agent = _agent(cfg, device, BASELINE if options is None else options)
            _learner_step(agent, replay, batch_size)
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
            with profile(activities=activities) as prof:
                t0 = time.perf_counter()
                for _ in range(updates):
                    with record_function("replay/sample"):
                        batch, idx, weights = replay.sample(batch_size)
                    metrics = agent.update(batch, weights)
                    with record_function("replay/update_priorities"):
                        replay.update_priorities(idx, metrics.pop("priorities"))
                    if device == "cuda":
                        torch.cuda.synchronize()
                wall = (time.perf_counter() - t0) / updates * 1000
            parts = {e.key: e.cpu_time_total / 1000 / updates for e in prof.key_averages()
                     if e.key.startswith(("replay/", "batch_to", "targets", "q_attention/", "critic/",
                                          "actor/", "alpha", "target_networks", "metrics_sync"))}
            parts["python_and_untracked"] = wall - sum(parts.values())
            print(json.dumps({"name": f"profile/{name}/batch{batch_size}/{device}", "preset": name,
                              "batch": batch_size, "ms_per_update": round(wall, 1),
                              "parts_ms": {k: round(v, 1) for k, v in parts.items()},
                              "parts_share": {k: round(v / wall, 3) for k, v in parts.items()},
                              "threads": _threads()}), flush=True)


def bench_latency(device, presets, decisions=50):
    """Decision latency at 128x128 (one observation -> pixel + pose, no exploration), fp32 eager
    and with each preset's optimised options."""
    rng = np.random.default_rng(0)
    for name in presets:
        from arm_policy.config import preset

        cfg = preset(name, image_size=128)
        obs = {k: v[0] for k, v in _batch(128, 1, rng).items() if k in ("rgb", "point_cloud", "low_dim")}
        for label, options in (("baseline", BASELINE), ("optimised", OPTIMISED[name])):
            agent = _agent(cfg, device, options)
            agent.act(obs, explore=False)
            times = []
            for _ in range(decisions):
                t0 = time.perf_counter()
                agent.act(obs, explore=False)
                times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1000
            emit(f"decision_latency_ms/{name}_nets/128x128/{device}/{label}", np.median(ms), "ms",
                 p95=round(float(np.percentile(ms, 95)), 2), options=options, target="<= 20")


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
        train(TrainSettings(task="reach_target", preset=preset_name, minutes=minutes, out=run),
              log=lambda line: print(line, file=sys.stderr, flush=True))
        reach_figures(run, start, minutes, preset_name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["updates", "profile", "latency", "reach"])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--presets", default="cpu,paper", help="comma-separated (default cpu,paper)")
    parser.add_argument("--batches", default="32,128", help="comma-separated batch sizes (default 32,128)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="timed seconds per (preset, batch) and option set (default 30)")
    parser.add_argument("--loss-updates", type=int, default=50,
                        help="fixed-seed updates before loss_rel_diff is read (default 50)")
    parser.add_argument("--options", type=json.loads, default=None,
                        help='compute options as JSON instead of the preset\'s optimised ones, e.g. \'{"amp": "bf16"}\'')
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--minutes", type=float, default=30.0, help="budget of the reach figure")
    parser.add_argument("--run", help="reach figure from this finished `arm train --inprocess` run "
                        "folder instead of a new run")
    args = parser.parse_args()
    import torch

    from arm_policy.agents import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device).type
    presets = args.presets.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    if args.only in (None, "updates"):
        bench_updates(device, presets, batches, args.seconds, args.loss_updates, args.options)
    if args.only == "profile":
        bench_profile(device, presets, batches, options=args.options)
    if args.only in (None, "latency"):
        bench_latency(device, presets)
    if args.only == "reach":  # a half-hour run: only when asked
        bench_reach(args.minutes, run=args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
