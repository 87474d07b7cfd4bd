"""The cross-entropy method (CEM) QT-Opt maximises Q with, for acting and inside the targets.

    best, score = maximize(score_fn, low, high)        # 2 iterations, 64 samples, 6 elites

One call optimises a whole batch of B independent problems at once (one per state): every
iteration draws S samples per problem, scores all B x S of them in one ``score_fn`` call, keeps
the ``elites`` best of each problem and refits that problem's sampling distribution to them:

* continuous dimensions (``low``/``high`` bounds): uniform over the box in the first iteration,
  then a diagonal Gaussian fitted to the elites (mean, standard deviation), samples clipped to
  the box;
* discrete dimensions (``discrete``: the number of choices of each, appended after the
  continuous ones, carried as float-valued indices 0..n-1): a categorical distribution, uniform
  in the first iteration, then the elites' frequencies.

The paper (seed 001) gives CEM's numbers (2 iterations, 64 samples, 6 elites) but not how the
discrete gripper and termination commands enter it; in the authors' open-source QT-Opt model
(tensor2robot) they are simply more inputs of the Q-function, so they have to be searched with
the rest. We sample them from a categorical refitted to the elites, the usual CEM for mixed
spaces: each discrete choice is scored jointly with continuous samples (64 samples cover the
4 gripper x terminate combinations ~16 times each in the first iteration), a choice is never
averaged into a meaningless fraction, and the cost stays S evaluations per iteration (enumerating
every combination for every continuous sample would cost 4x). The answer is the best sample
scored in any iteration, not the final mean, so it is always an action that was evaluated.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["maximize"]

#: smallest Gaussian standard deviation, as a fraction of each dimension's range
MIN_STD_FRACTION = 1e-3


def maximize(score_fn: Callable[[torch.Tensor], torch.Tensor], low, high, iterations: int = 2,
             samples: int = 64, elites: int = 6, generator: torch.Generator | None = None,
             discrete: Sequence[int] = (), batch_size: int | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise ``score_fn`` over a box (x) discrete choices, for a batch -> (best (B, D + K),
    its score (B,)).

    ``score_fn``: (B, S, D + K) float samples -> (B, S) scores (higher is better); the last K
    columns hold the discrete choices as floats 0., 1., ... ``low``/``high``: (D,) shared or
    (B, D) per-problem bounds of the D continuous dimensions (D may be 0). ``discrete``: the
    number of choices of each of the K discrete dimensions. ``batch_size``: B when the bounds are
    shared (default 1). ``generator``: a torch.Generator on the bounds' device, for repeatable
    samples. See the module docstring for the method."""
    low, high = torch.as_tensor(low), torch.as_tensor(high)
    if not low.is_floating_point():
        low, high = low.float(), high.float()
    high = high.to(low.device, low.dtype)
    if low.shape != high.shape or low.dim() not in (1, 2):
        raise ValueError(f"low {tuple(low.shape)} and high {tuple(high.shape)} must both be (D,) or (B, D)")
    if bool((high < low).any()):
        raise ValueError("every high must be >= its low")
    if low.dim() == 1:
        b = 1 if batch_size is None else int(batch_size)
        low, high = low.expand(b, -1), high.expand(b, -1)
    elif batch_size is not None and batch_size != low.shape[0]:
        raise ValueError(f"batch_size {batch_size} but the bounds are for {low.shape[0]} problems")
    discrete = [int(n) for n in discrete]
    if any(n < 1 for n in discrete):
        raise ValueError(f"every discrete dimension needs >= 1 choice, got {discrete}")
    if not 1 <= elites <= samples or iterations < 1:
        raise ValueError(f"need iterations >= 1 and 1 <= elites ({elites}) <= samples ({samples})")
    b, d = low.shape
    dev, dtype = low.device, low.dtype
    span = high - low
    min_std = (MIN_STD_FRACTION * span).clamp_min(1e-12)[:, None, :]
    mean, std = None, None
    probs = [torch.full((b, n), 1.0 / n, device=dev, dtype=dtype) for n in discrete]
    best = torch.empty(b, d + len(discrete), device=dev, dtype=dtype)
    best_score = torch.full((b,), float("-inf"), device=dev, dtype=dtype)
    rows = torch.arange(b, device=dev)[:, None]

    for it in range(iterations):
        # -- sample S candidates per problem
        if d == 0:
            cont = low.new_zeros(b, samples, 0)
        elif it == 0:
            cont = low[:, None] + span[:, None] * torch.rand(b, samples, d, generator=generator,
                                                            device=dev, dtype=dtype)
        else:
            noise = torch.randn(b, samples, d, generator=generator, device=dev, dtype=dtype)
            cont = torch.maximum(torch.minimum(mean + std * noise, high[:, None]), low[:, None])
        choices = [torch.multinomial(p, samples, replacement=True, generator=generator).to(dtype)
                   for p in probs]
        x = torch.cat([cont, *(c[:, :, None] for c in choices)], dim=2)  # (B, S, D + K)
        scores = score_fn(x)
        if scores.shape != (b, samples):
            raise ValueError(f"score_fn returned {tuple(scores.shape)}, expected ({b}, {samples})")
        scores = torch.nan_to_num(scores.to(dtype), nan=float("-inf"))
        # -- keep the best sample seen so far
        top_score, top = scores.max(dim=1)
        better = (top_score > best_score) | (it == 0)  # all -inf/NaN: still an answer
        best = torch.where(better[:, None], x[rows[:, 0], top], best)
        best_score = torch.where(better, top_score, best_score)
        if it == iterations - 1:
            break
        # -- refit to the elites
        elite_idx = scores.topk(elites, dim=1).indices  # (B, M)
        elite = x[rows, elite_idx]  # (B, M, D + K)
        if d:
            mean = elite[:, :, :d].mean(dim=1, keepdim=True)
            std = torch.maximum(elite[:, :, :d].std(dim=1, unbiased=False, keepdim=True), min_std)
        probs = [torch.nn.functional.one_hot(elite[:, :, d + k].long(), n).to(dtype).mean(dim=1)
                 for k, n in enumerate(discrete)]
    return best, best_score
