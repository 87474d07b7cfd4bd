"""The `paper` preset is the authors' agent (stepjam/ARM, YARR): one test per item where this
project once departed from their code, and the presets compared field by field."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arm_policy.agents import ARMAgent, BCAgent, from_checkpoint
from arm_policy.config import CPU_DIFFERENCES, PRESETS, ARMConfig
from arm_policy.networks import crop
from arm_policy.rewards import FAILURE_REWARD, step_reward

BOUNDS = np.array([[-0.3, -0.4, 0.8], [0.5, 0.4, 1.4]], np.float32)
#: the paper preset's losses and optimisation, on networks small enough for a test
TINY_PAPER = PRESETS["paper"].replace(
    image_size=16, crop_size=8, batch_size=8, unet_stem=4, unet_stem_kernel=3, unet_filters=(8, 8),
    unet_kernel=3, pose_stem=4, actor_channels=8, actor_hidden=16, critic_channels=8,
    critic_layers=2, replay_capacity=64)


def batch(n=4, size=16, reward=0.0, terminal=False, timeout=False, seed=0):
    rng = np.random.default_rng(seed)

    def image():
        return rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)

    def cloud():
        return rng.uniform(-0.5, 1.5, (n, size, size, 3)).astype(np.float32)

    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return {"rgb": image(), "point_cloud": cloud(), "low_dim": rng.normal(size=(n, 11)).astype(np.float32),
            "pixel": rng.integers(0, size, (n, 2)), "next_pixel": rng.integers(0, size, (n, 2)),
            "action": np.concatenate([rng.uniform(BOUNDS[0], BOUNDS[1], (n, 3)), q, np.ones((n, 1))], 1),
            "reward": np.full(n, reward, np.float32), "terminal": np.full(n, terminal),
            "timeout": np.full(n, timeout), "next_rgb": image(), "next_point_cloud": cloud(),
            "next_low_dim": rng.normal(size=(n, 11)).astype(np.float32)}


def agent(cfg=TINY_PAPER, cls=ARMAgent) -> ARMAgent:
    return cls(cfg, BOUNDS, device="cpu", seed=0)


# --------------------------------------------------------------------------- rewards and targets


def test_an_unexecutable_pose_gives_zero_and_ends_the_episode_and_a_cut_is_a_timeout():
    assert FAILURE_REWARD == 0.0
    assert step_reward("unreachable", False, 0, 10) == (0.0, True, False)
    assert step_reward("reached", True, 3, 10) == (1.0, True, False)
    assert step_reward("reached", False, 3, 10) == (0.0, False, False)
    assert step_reward("reached", False, 9, 10) == (0.0, True, True)


def test_a_negative_reward_never_lowers_a_q_attention_target_below_zero_nor_above_100():
    a = agent()
    with torch.no_grad():  # Q-attention's target network predicting very negative / large values
        a.attention_target.heads[0].head.bias.fill_(-500.0)
        a.attention_target.heads[1].head.bias.fill_(-500.0)
    y_att, _ = a.targets(a.batch_tensors(batch(reward=-1.0)))
    assert torch.all(y_att == 0.0)
    with torch.no_grad():
        for head in a.attention_target.heads:
            head.head.bias.fill_(500.0)
    y_att, _ = a.targets(a.batch_tensors(batch(reward=1.0)))
    assert torch.all(y_att == 100.0)


def test_a_timeout_bootstraps_and_a_real_end_does_not():
    a = agent()
    r = 1.0

    def target(**kind):
        torch.manual_seed(0)  # the same sampled next actions for each
        return a.targets(a.batch_tensors(batch(reward=r, **kind)))[1]

    y_end, y_cut, y_mid = target(terminal=True), target(terminal=True, timeout=True), target()
    assert torch.allclose(y_end, torch.full_like(y_end, 100.0 * r))
    assert torch.allclose(y_cut, y_mid) and not torch.allclose(y_cut, y_end)


def test_the_critic_target_is_read_on_the_crop_at_the_stored_next_pixel_per_pixel():
    a = agent()
    b = batch()
    t = a.batch_tensors(b)
    torch.manual_seed(1)
    _, y = a.targets(t)
    assert y.shape == (4, 8, 8)  # one target per pixel of the crop
    # the same sample noise, computed by hand on the crop at the stored next pixel
    torch.manual_seed(1)
    next_crop = crop(t["next_obs"], torch.as_tensor(b["next_pixel"]), 8)
    with torch.no_grad():
        a_next, log_pi, _ = a.actor(next_crop, t["next_low_dim"])
        q_t, _ = a.critic_target(next_crop, t["next_low_dim"], a_next)
    expected = 100.0 * 0.0 + 0.99 * (q_t.min(1).values - 0.05 * log_pi[:, None, None])
    assert torch.allclose(y, expected, atol=1e-5)
    # another next pixel, another target: the current Q-attention's argmax is not used
    moved = dict(b, next_pixel=(b["next_pixel"] + 5) % 16)
    torch.manual_seed(1)
    _, y_moved = a.targets(a.batch_tensors(moved))
    assert not torch.allclose(y, y_moved)


# --------------------------------------------------------------------------- losses and optimisation


def test_paper_optimisation_is_the_authors():
    p = PRESETS["paper"]
    assert (p.attention_lr, p.critic_lr, p.actor_lr) == (5e-4, 2.5e-3, 1e-3)
    assert (p.alpha_auto_tune, p.init_alpha, p.grad_clip, p.q_reg_weight) == (False, 0.05, 5.0, 1e-7)
    assert (p.gamma, p.tau, p.batch_size, p.reward_scale, p.q_clamp) == (0.99, 0.005, 128, 100.0, 100.0)
    assert not p.actor_relative_xyz and not p.attention_low_dim and p.attention_workspace_margin < 0
    assert (p.demo_attention_weight, p.demo_actor_weight, p.replay_demo_fraction) == (0.0, 0.0, 0.0)
    assert not p.imitate_successes and p.exploration_noise_scale == 1.0
    a = agent(p.replace(image_size=16, crop_size=8, unet_filters=(8, 8), critic_layers=1,
                        critic_channels=8, pose_stem=4, actor_channels=8))
    lrs = [opt.param_groups[0]["lr"] for opt in (a.attention_opt, a.critic_opt, a.actor_opt)]
    assert lrs == [5e-4, 2.5e-3, 1e-3]


def test_alpha_stays_fixed_at_0_05_in_the_paper_preset():
    a = agent()
    out = a.update(batch(n=8))
    assert out["alpha"] == pytest.approx(0.05) and "alpha_loss" not in out
    assert float(a.alpha.detach()) == pytest.approx(0.05)


def test_losses_are_huber_and_q_reg_is_summed_over_the_batch():
    a = agent()
    b = batch(n=8, reward=1.0, terminal=True)  # y = 100 everywhere: large TD errors
    t = a.batch_tensors(b)
    with torch.no_grad():
        q_map = a.attention(t["obs"], t["low_dim"])
    out = a.update(b)
    q_pixel = q_map[torch.arange(8)[:, None], torch.arange(2)[None], t["pixel"][:, None, 0], t["pixel"][:, None, 1]]
    huber = F.smooth_l1_loss(q_pixel, torch.full_like(q_pixel, 100.0), reduction="none").sum(1).mean()
    q_reg = 1e-7 * 0.5 * q_map.pow(2).sum()
    assert out["q_reg"] == pytest.approx(float(q_reg), rel=1e-4)
    assert out["q_attention_loss"] == pytest.approx(float(huber + q_reg), rel=1e-4)
    assert out["q_attention_loss"] < 2 * 100  # a squared loss would be ~2 * 100^2


def test_gradients_are_clipped_by_value():
    a = agent()
    loss = 1e6 * sum(p.sum() for p in a.actor.parameters())
    a._step("actor", loss, a.actor_opt, list(a.actor.parameters()))
    grads = torch.cat([p.grad.flatten() for p in a.actor.parameters()])
    assert grads.abs().max() == pytest.approx(5.0)


def test_translation_is_absolute_inside_the_bounds_in_the_paper_preset():
    a = agent()
    zero = torch.zeros(2, 8)
    anchors = torch.tensor([[0.0, 0.0, 1.0], [0.4, 0.3, 1.3]])
    xyz = a.actor.to_action(zero, anchors)[:, :3]
    assert torch.allclose(xyz[0], xyz[1])  # the attended point does not move it
    assert torch.allclose(xyz[0], torch.as_tensor(BOUNDS.mean(0)))


# --------------------------------------------------------------------------- presets


def test_cpu_differences_list_exactly_the_fields_where_cpu_differs_from_paper():
    paper, cpu = PRESETS["paper"], PRESETS["cpu"]
    differing = {f.name for f in dataclasses.fields(ARMConfig)
                 if getattr(paper, f.name) != getattr(cpu, f.name)}
    listed = {name.strip() for key in CPU_DIFFERENCES for name in key.split("/")}
    assert listed == differing
    assert all(len(reason) > 40 for reason in CPU_DIFFERENCES.values())  # each with its reason


# --------------------------------------------------------------------------- BC baseline


def test_bc_lowers_its_loss_on_a_fixed_batch_and_puts_the_attention_argmax_on_the_demo_pixels():
    a = agent(TINY_PAPER.replace(attention_lr=3e-3), cls=BCAgent)
    rng = np.random.default_rng(0)
    b = batch(n=8)
    for i, (r, c) in enumerate(b["pixel"]):  # a bright square marks each demo pixel
        b["rgb"][i] = rng.integers(0, 40, (16, 16, 3))
        b["rgb"][i, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = 255
    first = a.update(b)
    for _ in range(300):
        last = a.update(b)
    assert last["bc_attention_loss"] < 0.2 * first["bc_attention_loss"]
    assert last["bc_actor_loss"] < 0.2 * first["bc_actor_loss"]
    assert last["bc_attention_accuracy"] == 1.0
    state = a.state_dict()
    assert state["agent"] == "bc" and isinstance(from_checkpoint(state), BCAgent)
