"""QT-Opt's CEM (arm_policy.agents.qtopt.cem.maximize) finds the maxima of known concave
functions: one state or a batch of states, continuous and discrete parts, inside the bounds."""
from __future__ import annotations

import pytest
import torch

from arm_policy.agents.qtopt import maximize

LOW, HIGH = -torch.ones(4), torch.ones(4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quadratic(peaks: torch.Tensor):
    """Concave score -|x - peak|^2 of each problem (peaks (B, D))."""
    return lambda x: -((x - peaks[:, None]) ** 2).sum(-1)


def peaks(b: int, d: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, d, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_one_state_paper_settings_land_near_the_peak_and_more_iterations_converge():
    peak = peaks(1)
    g = torch.Generator().manual_seed(1)
    best, score = maximize(quadratic(peak), LOW, HIGH, generator=g)  # 2 x 64, 6 elites
    assert best.shape == (1, 4) and score.shape == (1,)
    assert (best - peak).abs().max() < 0.35  # a 4-D box of side 2 searched with 128 samples
    assert torch.allclose(score, quadratic(peak)(best[:, None])[:, 0])  # the score of the answer
    best, _ = maximize(quadratic(peak), LOW, HIGH, iterations=8, samples=256, elites=16, generator=g)
    assert (best - peak).abs().max() < 0.03


def test_a_batch_of_states_each_gets_its_own_maximum():
    b = 64
    peak = peaks(b, seed=2)
    g = torch.Generator().manual_seed(3)
    best, score = maximize(quadratic(peak), LOW, HIGH, batch_size=b, generator=g)
    err = (best - peak).abs().max(dim=1).values
    assert best.shape == (b, 4) and err.max() < 0.5 and err.mean() < 0.2
    # the refit iteration helps: better than the best of the first iteration's 64 uniform samples
    _, first_score = maximize(quadratic(peak), LOW, HIGH, iterations=1, batch_size=b,
                                  generator=torch.Generator().manual_seed(3))
    assert (score >= first_score).all() and score.mean() > first_score.mean()
    best, _ = maximize(quadratic(peak), LOW, HIGH, iterations=8, samples=256, elites=16,
                       batch_size=b, generator=g)
    assert (best - peak).abs().max() < 0.05


def test_per_state_bounds_and_a_peak_outside_the_box_gives_the_nearest_corner():
    b = 8
    low = torch.stack([torch.full((3,), -1.0 + i * 0.1) for i in range(b)])
    high = low + 0.5
    peak = torch.full((b, 3), 5.0)  # far above every box: the maximum is each box's high corner
    best, _ = maximize(quadratic(peak), low, high, iterations=6, samples=128, elites=8,
                       generator=torch.Generator().manual_seed(0))
    assert ((best >= low) & (best <= high)).all()
    assert torch.allclose(best, high, atol=0.02)


def test_discrete_choices_are_found_exactly_jointly_with_the_continuous_peak():
    """Two binary dimensions (gripper, terminate), a different best pair for each state, and a
    continuous peak; the choices come back as exact integers."""
    b = 32
    g = torch.Generator().manual_seed(4)
    peak = peaks(b, seed=5)
    bonus = torch.randint(0, 2, (b, 2), generator=g)  # the best choice of each discrete dimension
    rows = torch.arange(b)[:, None]

    def score(x):
        close, term = x[..., 4].long(), x[..., 5].long()
        assert ((x[..., 4:] == 0) | (x[..., 4:] == 1)).all()
        return (quadratic(peak)(x[..., :4]) + 1.0 * (close == bonus[rows, 0]).float()
                + 2.0 * (term == bonus[rows, 1]).float())

    best, _ = maximize(score, LOW, HIGH, generator=g, discrete=(2, 2), batch_size=b)
    assert best.shape == (b, 6)
    assert torch.equal(best[:, 4:].long(), bonus)
    assert (best[:, :4] - peak).abs().max(dim=1).values.mean() < 0.25


def test_discrete_only_with_more_choices_and_a_concave_profile():
    b = 16
    target = torch.arange(b) % 7
    best, value = maximize(lambda x: -((x[..., 0] - target[:, None]) ** 2), torch.zeros(0),
                           torch.zeros(0), generator=torch.Generator().manual_seed(0),
                           discrete=(7,), batch_size=b)
    assert torch.equal(best[:, 0].long(), target) and torch.all(value == 0)


def test_a_seeded_generator_repeats_and_bad_arguments_are_refused():
    peak = peaks(4)
    runs = [maximize(lambda x: quadratic(peak)(x[..., :4]) + x[..., 4], LOW, HIGH, batch_size=4,
                     discrete=(2,), generator=torch.Generator().manual_seed(9))
            for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0])
    with pytest.raises(ValueError, match="score_fn returned"):
        maximize(lambda x: x.sum(-1, keepdim=True), LOW, HIGH)
    with pytest.raises(ValueError, match="elites"):
        maximize(quadratic(peak), LOW, HIGH, samples=4, elites=5)
    with pytest.raises(ValueError, match="high must be >= its low"):
        maximize(quadratic(peak), HIGH, LOW)
    best, _ = maximize(lambda x: torch.full(x.shape[:2], float("nan")), LOW, HIGH)  # still an answer
    assert best.shape == (1, 4) and torch.isfinite(best).all()
