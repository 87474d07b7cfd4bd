"""Decision latency of QT-Opt: image -> action, CEM included (the issue's target: <= 30 ms on the
CPU at 64x64). Greedy decisions (CEM every time, no epsilon shortcut) on random images.

    python -m arm_policy.agents.qtopt.latency              # 1 thread and torch's default
    python -m arm_policy.agents.qtopt.latency --decisions 200 --device cuda
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from .agent import QTOptAgent
from .config import QTOptConfig

__all__ = ["decision_latency"]


def decision_latency(cfg: QTOptConfig | None = None, decisions: int = 50, warmup: int = 10,
                     threads: int | None = None, device: str = "cpu", seed: int = 0) -> dict[str, float]:
    """Milliseconds per ``act`` (median, mean, p95, max) over ``decisions`` greedy decisions after
    ``warmup`` ones, with ``threads`` torch threads (None: as they are)."""
    cfg = cfg or QTOptConfig()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        agent = QTOptAgent(cfg, device=device, seed=seed)
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 255, (warmup + decisions, cfg.image_size, cfg.image_size, 3), np.uint8)
        times = []
        for i, rgb in enumerate(images):
            obs = {"rgb": rgb, "gripper_open": 1.0, "gripper_height": float(rng.uniform(0, 0.3)),
                   "gripper_aperture": 1.0}
            start = time.perf_counter()
            agent.act(obs, explore=False)  # returns numpy: the decision is complete on any device
            if i >= warmup:
                times.append(1e3 * (time.perf_counter() - start))
        ms = np.asarray(times)
        return {"threads": torch.get_num_threads(), "median_ms": float(np.median(ms)),
                "mean_ms": float(ms.mean()), "p95_ms": float(np.percentile(ms, 95)),
                "max_ms": float(ms.max())}
    finally:
        torch.set_num_threads(before)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decisions", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    cfg = QTOptConfig(image_size=args.image_size)
    for threads in (1, None):
        r = decision_latency(cfg, args.decisions, args.warmup, threads, args.device)
        print(f"{cfg.image_size}x{cfg.image_size}, CEM {cfg.cem_iterations}x{cfg.cem_samples}, "
              f"{r['threads']} thread(s){'' if threads else ' (default)'}: median {r['median_ms']:.2f} ms, "
              f"mean {r['mean_ms']:.2f}, p95 {r['p95_ms']:.2f}, max {r['max_ms']:.2f}")


if __name__ == "__main__":
    main()
