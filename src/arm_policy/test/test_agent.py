"""ARM agent: shapes, crop, actor log-prob, losses going down, NaN guard, checkpoints, learning."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from arm_policy.agents import ARMAgent, NumericalError
from arm_policy.config import PRESETS, ARMConfig, preset
from arm_policy.demo_dataset import STAGE_FEATURES
from arm_policy.networks import Actor, crop, obs_tensor
from arm_policy.replay import PrioritizedReplay

BOUNDS = np.array([[-0.3, -0.4, 0.8], [0.5, 0.4, 1.4]], np.float32)
TINY = ARMConfig(image_size=16, crop_size=8, batch_size=32, unet_stem=4, unet_stem_kernel=3,
                 unet_filters=(8, 8), unet_kernel=3, pose_stem=4, actor_channels=8,
                 actor_hidden=16, critic_channels=8, critic_layers=2, log_std_min=-10.0,
                 log_std_max=2.0, replay_capacity=256)


def scene(rng, size=16, target=None):
    """Dark noisy image with a bright 3x3 square centred on ``target`` (the Q-attention label)."""
    if target is None:
        target = rng.integers(1, size - 1, 2)
    rgb = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    r, c = target
    rgb[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = 255
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    pc = np.stack([rows, cols, np.ones_like(rows)], -1)
    pc[rng.random((size, size)) < 0.05] = np.nan  # missing depth
    return rgb, pc, np.asarray(target)


def batch_of(rng, n, size=16):
    out = {k: [] for k in ("rgb", "point_cloud", "low_dim", "pixel", "action", "reward",
                           "terminal", "next_rgb", "next_point_cloud", "next_low_dim", "next_pixel")}
    for _ in range(n):
        rgb, pc, px = scene(rng, size)
        nrgb, npc, npx = scene(rng, size)
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[3])
        vals = dict(rgb=rgb, point_cloud=pc, low_dim=rng.normal(size=11).astype(np.float32),
                    pixel=px, action=np.concatenate([rng.uniform(BOUNDS[0], BOUNDS[1]), q, [1.0]]),
                    reward=1.0, terminal=True, next_rgb=nrgb, next_point_cloud=npc,
                    next_low_dim=rng.normal(size=11).astype(np.float32), next_pixel=npx)
        for k, v in vals.items():
            out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


# --------------------------------------------------------------------------- config


def test_presets_round_trip_and_differ_where_documented():
    for cfg in PRESETS.values():
        assert ARMConfig.from_dict(cfg.to_dict()) == cfg
    p, c = PRESETS["paper"], PRESETS["cpu"]
    assert (p.image_size, p.batch_size, p.replay_capacity, p.crop_size) == (128, 128, 100_000, 16)
    assert (p.tau, p.gamma, p.reward_scale, p.confidence_weight) == (0.005, 0.99, 100.0, 1.0)
    assert c.image_size == 64 and c.batch_size == 32
    # the authors' optimisation: grads clipped by value at 5, a fixed temperature of 0.05,
    # lambda 1e-7, Q-attention targets in [0, 100]; cpu keeps a tuned temperature (CPU_DIFFERENCES)
    assert (p.grad_clip, p.alpha_auto_tune, p.init_alpha, p.q_reg_weight, p.q_clamp) == (
        5.0, False, 0.05, 1e-7, 100.0)
    assert c.alpha_auto_tune and c.init_alpha == 0.2
    assert preset("cpu", batch_size=8).batch_size == 8
    with pytest.raises(ValueError):
        ARMConfig.from_dict({**p.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        ARMConfig(image_size=30)


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("pixel", [(0, 0), (0, 19), (19, 0), (19, 19), (10, 5)])
def test_crop_at_corners(pixel):
    img = torch.arange(20 * 20, dtype=torch.float32).reshape(1, 1, 20, 20) + 1  # > 0 inside
    img = torch.cat([img, -img], dim=1)
    out = crop(img, torch.tensor([pixel]), 16)
    assert out.shape == (1, 2, 16, 16)
    r, c = pixel
    assert out[0, 0, 8, 8] == img[0, 0, r, c]
    for i in range(16):
        for j in range(16):
            rr, cc = r + i - 8, c + j - 8
            expect = img[0, :, rr, cc] if 0 <= rr < 20 and 0 <= cc < 20 else torch.zeros(2)
            assert torch.equal(out[0, :, i, j], expect)


def test_obs_tensor_handles_nan():
    rng = np.random.default_rng(0)
    rgb, pc, _ = scene(rng)
    x = obs_tensor(torch.as_tensor(rgb[None]), torch.as_tensor(pc[None]))
    assert x.shape == (1, 7, 16, 16) and torch.isfinite(x).all()
    assert torch.equal(x[0, 6] == 0, torch.as_tensor(np.isnan(pc).any(-1)))
    assert x[:, :3].min() >= -1 and x[:, :3].max() <= 1


def test_shapes_paper_preset():
    cfg = PRESETS["paper"]
    agent = ARMAgent(cfg, BOUNDS, "cpu")
    rng = np.random.default_rng(0)
    b = batch_of(rng, 2, size=128)
    pixel, action, q_map = agent.act({k: b[k][0] for k in ("rgb", "point_cloud", "low_dim")},
                                     explore=True)
    assert pixel.shape == (2,) and action.shape == (8,) and q_map.shape == (128, 128)
    assert q_map[tuple(pixel)] == q_map.max()
    assert np.all(action[:3] >= BOUNDS[0] - 1e-6) and np.all(action[:3] <= BOUNDS[1] + 1e-6)
    assert np.linalg.norm(action[3:7]) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= action[7] <= 1.0
    m = agent.update(b, np.ones(2, np.float32))
    assert m["priorities"].shape == (2,) and np.isfinite(m["priorities"]).all()
    with pytest.raises(ValueError, match="expects"):
        agent.act({"rgb": b["rgb"][0, :64, :64], "point_cloud": b["point_cloud"][0, :64, :64],
                   "low_dim": b["low_dim"][0]}, explore=False)


def test_actor_log_prob_finite_for_extreme_actions():
    actor = Actor(TINY, BOUNDS)
    last = actor.mlp[-1]
    x, low = torch.randn(4, 7, 8, 8), torch.randn(4, 11)
    for mu, log_std in ((1e4, 1e4), (-1e4, -1e4), (50.0, -1e4), (0.0, 0.0)):
        with torch.no_grad():
            last.weight.zero_()
            last.bias[:8] = mu
            last.bias[8:] = log_std
        a, log_prob, mean = actor(x, low)
        assert torch.isfinite(log_prob).all() and torch.isfinite(a).all(), (mu, log_std)
        assert torch.all(a[:, :3] >= torch.as_tensor(BOUNDS[0]) - 1e-5)
        assert torch.all(a[:, :3] <= torch.as_tensor(BOUNDS[1]) + 1e-5)
        assert torch.allclose(a[:, 3:7].norm(dim=1), torch.ones(4), atol=1e-5)
        assert torch.all((a[:, 6] >= -0.05)) and torch.all((a[:, 7] >= 0) & (a[:, 7] <= 1))


# --------------------------------------------------------------------------- learning


def test_repeated_updates_on_a_batch_lower_the_losses():
    """Huber losses on targets of 100 fall about linearly in the step size; at the paper's 5e-4
    30 steps move Q-attention by ~1, so this uses the higher learning rate of the learning test."""
    torch.manual_seed(0)
    agent = ARMAgent(TINY.replace(attention_lr=3e-3), BOUNDS, "cpu")
    b = batch_of(np.random.default_rng(1), 16)
    w = np.linspace(0.5, 1.0, 16).astype(np.float32)
    first = agent.update(b, w)
    for _ in range(30):
        last = agent.update(b, w)
    assert last["q_attention_loss"] < 0.5 * first["q_attention_loss"]
    assert last["critic_loss"] < 0.5 * first["critic_loss"]
    assert last["q_attention_td"] < first["q_attention_td"]


@pytest.mark.parametrize("field, attention_low_dim, poisoned", [
    ("reward", False, "q_attention"),
    ("low_dim", True, "q_attention"),  # tiled over the Q-attention input (the cpu preset)
    ("low_dim", False, "critic"),  # the authors' Q-attention does not read it: the critic is first
    ("action", False, "critic"),
])
def test_nan_guard_names_the_loss(field, attention_low_dim, poisoned):
    agent = ARMAgent(TINY.replace(attention_low_dim=attention_low_dim), BOUNDS, "cpu")
    b = batch_of(np.random.default_rng(2), 4)
    net = agent.attention if poisoned == "q_attention" else agent.critic
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b[field] = b[field].astype(np.float32)
    b[field][1] = np.nan
    with pytest.raises(NumericalError, match=f"non-finite {poisoned} loss"):
        agent.update(b, np.ones(4, np.float32))
    for k, v in net.state_dict().items():  # the network never stepped on its poisoned loss
        assert torch.equal(v, before[k])
    with torch.no_grad():
        next(agent.actor.parameters()).fill_(float("inf"))
    with pytest.raises(NumericalError, match="actor parameter"):
        agent.state_dict()


@pytest.mark.parametrize("with_pose", [True, False])
def test_q_attention_reads_the_gripper_pose_only_when_asked(with_pose):
    """attention_low_dim_pose=False tiles only the stage features over the Q-attention input: a
    different hand pose leaves its map unchanged, a different time or gripper state does not."""
    torch.manual_seed(0)
    cfg = TINY.replace(attention_low_dim=True, attention_low_dim_pose=with_pose)
    agent = ARMAgent(cfg, BOUNDS, "cpu")
    b = batch_of(np.random.default_rng(3), 1)
    obs = obs_tensor(torch.as_tensor(b["rgb"]), torch.as_tensor(b["point_cloud"]))
    low_dim = torch.as_tensor(b["low_dim"], dtype=torch.float32)
    moved, later = low_dim.clone(), low_dim.clone()
    moved[:, 1:8] += 0.05  # the hand 5 cm off on every axis, the quaternion tilted
    later[:, STAGE_FEATURES[-1]] -= 0.2  # one step later
    with torch.no_grad():
        q, q_moved, q_later = (agent.attention(obs, x) for x in (low_dim, moved, later))
    assert torch.equal(q, q_moved) is not with_pose
    assert not torch.equal(q, q_later)


def _tensors(agent, b):
    obs = obs_tensor(torch.as_tensor(b["rgb"]), torch.as_tensor(b["point_cloud"]))
    next_obs = obs_tensor(torch.as_tensor(b["next_rgb"]), torch.as_tensor(b["next_point_cloud"]))
    return (obs, next_obs, torch.as_tensor(b["low_dim"]), torch.as_tensor(b["next_low_dim"]),
            torch.as_tensor(b["pixel"]), torch.as_tensor(b["next_pixel"]))


@pytest.mark.parametrize("reward, target", [(-1.0, 0.0), (0.5, 50.0), (2.0, 100.0)])
def test_q_attention_loss_is_huber_to_a_nonnegative_clamped_target_plus_batch_q_reg(reward, target):
    """Terminal transitions: y = clamp(max(100 r, 0), 0, 100); the loss is the importance-weighted
    batch mean of the heads' summed Huber losses, plus lambda/2 * sum of Q^2 over the whole batch."""
    torch.manual_seed(0)
    cfg = TINY.replace(q_reg_weight=1e-2)
    agent = ARMAgent(cfg, BOUNDS, "cpu")
    b = batch_of(np.random.default_rng(10), 8)
    b["reward"] = np.full(8, reward, np.float32)
    w = np.linspace(0.25, 1.0, 8).astype(np.float32)
    obs, _, low_dim, _, pixel, _ = _tensors(agent, b)
    with torch.no_grad():
        q_map = agent.attention(obs, low_dim)
    q_pixel = q_map[torch.arange(8), :, pixel[:, 0], pixel[:, 1]]  # (B, 2)
    error = q_pixel - target
    huber = torch.where(error.abs() < 1, 0.5 * error ** 2, error.abs() - 0.5).sum(1)
    q_reg = 1e-2 * 0.5 * q_map.pow(2).sum()
    m = agent.update(b, w)
    assert m["q_reg"] == pytest.approx(q_reg.item(), rel=1e-4)
    assert m["q_attention_loss"] == pytest.approx((torch.as_tensor(w) * huber).mean().item() + q_reg.item(),
                                                  rel=1e-4)
    assert m["q_attention_td"] == pytest.approx(error.abs().mean().item(), rel=1e-4)


def test_critic_regresses_every_pixel_of_its_crop_on_that_pixels_target():
    """y_ij = r + gamma b (min_k Q'_k,ij(s', a') - alpha log pi(a'|s')) on the crop of s' at the
    stored next pixel (b = 0 only where the episode really ended, not at a timeout); the loss is
    the importance-weighted batch mean of sum_k mean_ij [Huber(Q_k,ij - y_ij) c - w log c]."""
    torch.manual_seed(0)
    cfg = TINY
    agent = ARMAgent(cfg, BOUNDS, "cpu")
    n = 8
    b = batch_of(np.random.default_rng(11), n)
    b["reward"] = np.r_[1.0, 0.0, 0.0, 1.0, np.zeros(4)].astype(np.float32)
    b["terminal"] = np.r_[True, True, False, True, np.zeros(4, bool)]
    b["timeout"] = np.r_[False, True, False, False, np.zeros(4, bool)]
    w = np.linspace(0.5, 1.0, n).astype(np.float32)
    obs, next_obs, low_dim, next_low_dim, pixel, next_pixel = _tensors(agent, b)
    s = cfg.crop_size
    torch.manual_seed(3)  # the same a' ~ pi(s') as the update draws
    with torch.no_grad():
        next_crop = crop(next_obs, next_pixel, s)
        a_next, log_pi_next, _ = agent.actor(next_crop, next_low_dim)
        q_t, _ = agent.critic_target(next_crop, next_low_dim, a_next)
        # ended, cut by the time limit (bootstraps), going on, ended, going on x4
        bootstrap = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])[:, None, None]
        y = (100.0 * torch.as_tensor(b["reward"])[:, None, None]
             + cfg.gamma * bootstrap * (q_t.min(1).values - cfg.init_alpha * log_pi_next[:, None, None]))
        q, c = agent.critic(crop(obs, pixel, s), low_dim, torch.as_tensor(b["action"], dtype=torch.float32))
        error = q - y[:, None]
        huber = torch.where(error.abs() < 1, 0.5 * error ** 2, error.abs() - 0.5)
        per_pixel = huber * torch.sigmoid(c) - cfg.confidence_weight * torch.nn.functional.logsigmoid(c)
        loss = (torch.as_tensor(w) * per_pixel.mean((2, 3)).sum(1)).mean()
    assert y.shape == (n, s, s) and y[2].std() > 0  # targets really differ across the crop
    torch.manual_seed(3)
    m = agent.update(b, w)
    assert m["critic_loss"] == pytest.approx(loss.item(), rel=1e-4)
    assert m["critic_td"] == pytest.approx(error.abs().mean().item(), rel=1e-4)


def test_a_timeout_bootstraps_like_a_non_terminal_step_and_a_real_end_does_not():
    b = batch_of(np.random.default_rng(12), 8)
    b["reward"] = np.zeros(8, np.float32)

    def metrics(terminal, timeout):
        torch.manual_seed(0)
        agent = ARMAgent(TINY, BOUNDS, "cpu")
        batch = {**b, "terminal": np.full(8, terminal), "timeout": np.full(8, timeout)}
        m = agent.update(batch, np.ones(8, np.float32))
        return m["critic_loss"], m["critic_td"], m["q_attention_td"]

    assert metrics(True, True) == metrics(False, False)
    assert metrics(True, True) != metrics(True, False)
    # a batch without the field: nothing was cut
    torch.manual_seed(0)
    m = ARMAgent(TINY, BOUNDS, "cpu").update({**b, "terminal": np.ones(8, bool)}, np.ones(8, np.float32))
    assert (m["critic_loss"], m["critic_td"], m["q_attention_td"]) == metrics(True, False)


def test_the_critics_next_crop_is_cut_at_the_stored_next_pixel():
    """Moving next_pixel moves the critic's bootstrap crop (its loss changes); Q-attention's own
    double-DQN target picks its pixel on s' itself (its loss does not)."""
    b = batch_of(np.random.default_rng(13), 8)
    b["terminal"] = np.zeros(8, bool)

    def losses(next_pixel):
        torch.manual_seed(0)
        agent = ARMAgent(TINY, BOUNDS, "cpu")
        m = agent.update({**b, "next_pixel": next_pixel}, np.ones(8, np.float32))
        return m["q_attention_loss"], m["critic_loss"]

    moved = (b["next_pixel"] + 7) % 16
    (att_a, critic_a), (att_b, critic_b) = losses(b["next_pixel"]), losses(moved)
    assert att_a == att_b and critic_a != critic_b
    assert losses(b["next_pixel"]) == (att_a, critic_a)  # repeatable: the change is the pixel's


def test_gradients_are_clipped_by_value():
    """Every gradient element is clipped into [-grad_clip, grad_clip] (many sit at the bound:
    not a norm clip, which would scale them all below it)."""
    b = batch_of(np.random.default_rng(14), 8)

    def grads(clip):
        torch.manual_seed(0)
        agent = ARMAgent(TINY.replace(grad_clip=clip), BOUNDS, "cpu")
        agent.update(b, np.ones(8, np.float32))  # each net keeps the gradient of its last step
        return {name: torch.cat([p.grad.flatten() for p in getattr(agent, name).parameters()
                                 if p.grad is not None])
                for name in ("attention", "critic", "actor")}

    raw, clipped = grads(1e9), grads(1e-3)
    for name in raw:
        assert raw[name].abs().max() > 1e-2, name  # the clip has something to do
        assert clipped[name].abs().max() <= 1e-3 * (1 + 1e-6), name
        assert (clipped[name].abs() >= 1e-3 * (1 - 1e-6)).sum() > 1, name


def test_alpha_is_fixed_unless_auto_tuned():
    b = batch_of(np.random.default_rng(15), 8)
    fixed = ARMAgent(TINY, BOUNDS, "cpu")
    for _ in range(3):
        m = fixed.update(b, np.ones(8, np.float32))
    assert "alpha_loss" not in m
    assert m["alpha"] == pytest.approx(TINY.init_alpha) and fixed.alpha.item() == pytest.approx(0.05)
    tuned = ARMAgent(TINY.replace(alpha_auto_tune=True, alpha_lr=1e-2), BOUNDS, "cpu")
    for _ in range(3):
        m = tuned.update(b, np.ones(8, np.float32))
    assert np.isfinite(m["alpha_loss"])
    assert abs(tuned.alpha.item() - 0.05) > 1e-3


class _CriticOfX(torch.nn.Module):
    """A critic that values a pose by its x (times ``sign``), everywhere in the crop."""

    def __init__(self, sign: float):
        super().__init__()
        self.sign = sign

    def forward(self, crop_obs, low_dim, action):
        b, s = action.shape[0], crop_obs.shape[-1]
        q = (self.sign * action[:, 0]).view(b, 1, 1, 1).expand(b, 2, s, s)
        return q, torch.zeros_like(q)


def test_a_refined_greedy_decision_takes_the_pose_near_the_actors_that_the_critic_values_most():
    """greedy_refine_samples = 32 (offsets of 1 cm per axis): with a critic valuing +x, the greedy
    pose moves +x from the actor's mean by a centimetre or more (the best of 31 draws), with -x the
    other way; rotation and gripper stay the actor's, xyz stays in the action bounds, and the same
    observation gets the same pose. Exploring decisions and 0 keep the actor's pose; BC, whose
    critic is not trained, refuses the option."""
    from arm_policy.agents import BCAgent

    torch.manual_seed(0)
    obs = {k: batch_of(np.random.default_rng(4), 1)[k][0] for k in ("rgb", "point_cloud", "low_dim")}
    agent = ARMAgent(TINY, BOUNDS, "cpu")
    mean = agent.act(obs, explore=False).action
    agent.cfg = TINY.replace(greedy_refine_samples=32, greedy_refine_cm=1.0)
    for sign in (1.0, -1.0):
        agent.critic = _CriticOfX(sign)
        pose = agent.act(obs, explore=False).action
        assert sign * (pose[0] - mean[0]) > 0.01
        assert np.abs(pose[:3] - mean[:3]).max() < 0.05
        np.testing.assert_array_equal(pose[3:], mean[3:])
        assert np.all(pose[:3] >= BOUNDS[0] - 1e-6) and np.all(pose[:3] <= BOUNDS[1] + 1e-6)
        np.testing.assert_array_equal(agent.act(obs, explore=False).action, pose)
    torch.manual_seed(5)
    explored = agent.act(obs, explore=True).action
    agent.cfg = TINY
    torch.manual_seed(5)
    np.testing.assert_array_equal(agent.act(obs, explore=True).action, explored)
    np.testing.assert_array_equal(agent.act(obs, explore=False).action, mean)
    with pytest.raises(ValueError, match="greedy_refine_samples needs a learned critic"):
        BCAgent(BCAgent.configure(TINY.replace(greedy_refine_samples=8)), BOUNDS, "cpu")
    with pytest.raises(ValueError, match="greedy_refine_samples -1 must be >= 0"):
        TINY.replace(greedy_refine_samples=-1)


@pytest.mark.parametrize("agent_class", ["arm", "bc"])
def test_greedy_decisions_take_the_actors_polyak_average_and_exploration_the_actor(agent_class):
    """actor_average_tau = 0.3: after each update the average moves 0.3 of the way to the actor
    (replayed here from the actor's parameters after each step); the greedy pose is the average's
    mean and the exploring one is sampled around the actor's; the average is saved, restored and
    published to other processes."""
    from arm_policy.agents import agent_class as registered

    torch.manual_seed(0)
    cls = registered(agent_class)
    agent = cls(cls.configure(TINY.replace(actor_average_tau=0.3)), BOUNDS, "cpu")
    b = batch_of(np.random.default_rng(4), 8)
    expected = {k: v.clone() for k, v in agent.actor.named_parameters()}
    for _ in range(3):
        agent.update(b, np.ones(8, np.float32))
        for k, v in agent.actor.named_parameters():
            expected[k] = 0.7 * expected[k] + 0.3 * v.detach()
    for k, v in agent.actor_average.named_parameters():
        torch.testing.assert_close(v, expected[k])
        assert not v.requires_grad
    assert any(not torch.equal(v, dict(agent.actor.named_parameters())[k])
               for k, v in agent.actor_average.named_parameters())
    obs = {k: b[k][0] for k in ("rgb", "point_cloud", "low_dim")}
    x = agent._obs(obs["rgb"][None], obs["point_cloud"][None])
    low_dim = torch.as_tensor(obs["low_dim"])[None]
    pixel = agent._attend(x, low_dim)[1]
    with torch.no_grad():
        crops = crop(x, pixel, agent.cfg.crop_size)
        averaged = agent.actor_average(crops, low_dim, deterministic=True)[2][0].numpy()
        online = agent.actor(crops, low_dim, deterministic=True)[2][0].numpy()
    np.testing.assert_allclose(agent.act(obs, explore=False).action, averaged, atol=1e-6)
    assert not np.allclose(averaged, online)
    torch.manual_seed(5)
    explored = agent.act(obs, explore=True).action
    torch.manual_seed(5)
    with torch.no_grad():
        sampled = agent.actor(crops, low_dim, deterministic=False,
                              noise_scale=agent.cfg.exploration_noise_scale)[0][0].numpy()
    np.testing.assert_allclose(explored, sampled, atol=1e-6)
    for clone in (cls.from_state_dict(agent.state_dict(), "cpu"), cls.from_target_state(agent.target_state())):
        np.testing.assert_allclose(clone.act(obs, explore=False).action, averaged, atol=1e-6)
    assert ARMAgent(TINY, BOUNDS, "cpu").actor_average is None  # off by default (authors)
    with pytest.raises(ValueError, match="actor_average_tau"):
        TINY.replace(actor_average_tau=1.5)


def test_state_dict_round_trip_gives_identical_outputs():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    agent = ARMAgent(TINY, BOUNDS, "cpu")
    b = batch_of(rng, 8)
    for _ in range(3):
        agent.update(b, np.ones(8, np.float32))
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone = ARMAgent.from_state_dict(torch.load(buf, weights_only=False), "cpu")
    obs = {k: b[k][0] for k in ("rgb", "point_cloud", "low_dim")}
    for explore in (False, True):
        torch.manual_seed(7)
        p1, a1, q1 = agent.act(obs, explore)
        torch.manual_seed(7)
        p2, a2, q2 = clone.act(obs, explore)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(q1, q2)
    torch.manual_seed(9)
    m1 = agent.update(b, np.ones(8, np.float32))
    torch.manual_seed(9)
    m2 = clone.update(b, np.ones(8, np.float32))
    assert m1["q_attention_loss"] == m2["q_attention_loss"]
    assert m1["critic_loss"] == m2["critic_loss"]


def test_a_seed_makes_the_initial_agent_and_its_exploration_repeatable():
    obs = {k: v[0] for k, v in batch_of(np.random.default_rng(0), 1).items()
           if k in ("rgb", "point_cloud", "low_dim")}

    def first_decisions(seed):
        agent = ARMAgent(TINY, BOUNDS, "cpu", seed=seed)
        return [agent.act(obs, explore=True)[1] for _ in range(2)]

    np.testing.assert_array_equal(first_decisions(5), first_decisions(5))
    assert not np.array_equal(first_decisions(5)[0], first_decisions(6)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    agent = ARMAgent(TINY, BOUNDS, "cuda")
    b = batch_of(np.random.default_rng(4), 8)
    m = agent.update(b, np.ones(8, np.float32))
    assert np.isfinite(m["critic_loss"])
    pixel, action, q_map = agent.act({k: b[k][0] for k in ("rgb", "point_cloud", "low_dim")}, True)
    assert action.shape == (8,)


def test_q_attention_learns_to_attend_to_the_target():
    """Synthetic scenes: the bright square marks the next keyframe's pixel; after 200
    prioritised updates the Q-attention argmax lands on the square in unseen scenes."""
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    cfg = TINY.replace(attention_lr=3e-3)
    agent = ARMAgent(cfg, BOUNDS, "cpu")
    replay = PrioritizedReplay.from_config(cfg, seed=0, fields=agent.replay_fields())
    data = batch_of(rng, 200)
    for i in range(200):
        replay.add({k: v[i] for k, v in data.items()})

    def hit_rate(n=50):
        hits = 0
        for _ in range(n):
            rgb, pc, target = scene(rng)
            pixel, _, _ = agent.act({"rgb": rgb, "point_cloud": pc,
                                     "low_dim": rng.normal(size=11).astype(np.float32)}, False)
            hits += int(np.abs(pixel - target).max() <= 1)
        return hits / n

    before = hit_rate()
    for _ in range(200):
        batch, idx, w = replay.sample(cfg.batch_size)
        m = agent.update(batch, w)
        replay.update_priorities(idx, m["priorities"])
    after = hit_rate()
    assert after >= 0.8, (before, after)
    assert after > before


# --------------------------------------------------------------------------- cpu-preset additions
