"""The project's terms beside the paper's, on the ARM agent: translation relative to the
attended point, the demo terms (actor, attention, imitated successes), the attention workspace,
exploration noise and the SAC baseline's whole-image view."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arm_policy.agents import ARMAgent, SACAgent, from_checkpoint
from arm_policy.agents.sac import CentreCrop
from arm_policy.networks import Actor, crop, obs_tensor

from test_agent import BOUNDS, TINY, batch_of, scene


def test_relative_actor_stays_within_range_of_the_attended_point():
    cfg = TINY.replace(actor_relative_xyz=True, relative_xyz_range=0.05)
    actor = Actor(cfg, BOUNDS)
    x = torch.zeros(3, 7, 8, 8)
    centre = torch.tensor([[0.1, 0.0, 1.0], [0.2, 0.3, 0.9], [0.0, 0.0, 0.0]])
    x[:2, 3:6, 4, 4] = centre[:2]
    x[:2, 6, 4, 4] = 1.0  # valid depth there; the third crop has none
    for _ in range(5):
        a, _, mean = actor(x, torch.randn(3, 11))
        for act in (a, mean):
            assert torch.all((act[:2, :3] - centre[:2]).abs() <= 0.05 + 1e-6)
            middle = torch.as_tensor(BOUNDS).mean(0)
            assert torch.all((act[2, :3] - middle).abs() <= 0.05 + 1e-6)
    # the pose error is blind to the quaternion's sign and weighs 1 range like 1 of gripper
    pose = torch.tensor([[0.1, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
    flipped = pose.clone()
    flipped[:, 3:7] *= -1
    anchor = actor.anchor(x)[:1]
    assert actor.pose_error(pose, flipped, anchor).item() < 1e-6
    moved = pose.clone()
    moved[:, 2] += 0.05
    assert torch.isclose(actor.pose_error(pose, moved, anchor), torch.tensor(1.0))


@pytest.mark.parametrize("straight_through", [True, False])
def test_a_pose_clipped_by_the_bounds_is_still_pulled_towards_the_demo_pose(straight_through):
    # a pre-grasp pose in free space: its pixel's point is on the table 40 cm below the bounds,
    # so the unclipped mean anchor + offset starts outside them on z
    cfg = TINY.replace(actor_relative_xyz=True, actor_bounds_straight_through=straight_through)
    actor = Actor(cfg, BOUNDS, relative_range=[0.5, 0.5, 0.5])
    x = torch.zeros(4, 7, 8, 8)
    x[:, 3:6, 4, 4] = torch.tensor([0.1, 0.0, 0.4])
    x[:, 6, 4, 4] = 1.0
    low_dim = torch.randn(4, 11)
    _, _, mean = actor(x, low_dim)
    assert torch.allclose(mean[:, 2], torch.tensor(0.8))  # clipped onto the bounds' floor either way
    (mean[:, 2] - 1.0).pow(2).sum().backward()  # the demo's pose is inside the bounds
    pulled = sum(p.grad.abs().sum() for p in actor.mlp.parameters())
    if straight_through:
        assert pulled > 0
    else:  # the plain clip: the clipped axis was the only error, and it passes no gradient
        assert pulled == 0


def test_relative_reach_is_per_axis_and_travels_with_the_checkpoint():
    reach = np.array([0.05, 0.1, 0.2], np.float32)
    agent = ARMAgent(TINY.replace(actor_relative_xyz=True), BOUNDS, "cpu", relative_range=reach)
    x = torch.zeros(64, 7, 8, 8)
    x[:, 3:6, 4, 4] = torch.tensor([0.1, 0.0, 1.1])
    x[:, 6, 4, 4] = 1.0
    a, _, _ = agent.actor(x, torch.randn(64, 11))
    offset = (a[:, :3] - torch.tensor([0.1, 0.0, 1.1])).abs()
    assert torch.all(offset <= torch.as_tensor(reach) + 1e-6)
    assert offset[:, 2].max() > 0.1  # z reaches further than the config's 0.1 m default would allow
    reloaded = ARMAgent.from_state_dict(agent.state_dict(), "cpu")
    assert torch.equal(reloaded.actor.relative_range, torch.as_tensor(reach))


def test_demo_actor_term_pulls_the_mean_pose_onto_the_demo_pose():
    torch.manual_seed(0)
    cfg = TINY.replace(actor_relative_xyz=True, demo_actor_weight=1.0, actor_lr=3e-3)
    agent = ARMAgent(cfg, [[-0.2, -0.2, 0.8], [1.2, 1.2, 1.2]], "cpu")  # holds scene()'s points
    b = batch_of(np.random.default_rng(6), 16)
    b["demo"] = np.ones(16, bool)
    # demo pose: 2 cm above the attended point, top-down, gripper open
    x = obs_tensor(torch.as_tensor(b["rgb"]), torch.as_tensor(b["point_cloud"]))
    anchor = agent.actor.anchor(crop(x, torch.as_tensor(b["pixel"]), cfg.crop_size)).numpy()
    b["action"] = np.concatenate([anchor + [0, 0, 0.02], np.tile([1.0, 0, 0, 0], (16, 1)),
                                  np.ones((16, 1))], axis=1).astype(np.float32)

    def error():
        with torch.no_grad():
            _, _, mean = agent.actor(crop(x, torch.as_tensor(b["pixel"]), cfg.crop_size),
                                     torch.as_tensor(b["low_dim"]))
        return np.abs(mean.numpy() - b["action"]).max(axis=0)

    before = error()
    metrics = [agent.update(b, np.ones(16, np.float32))["actor_demo"] for _ in range(60)]
    after = error()
    assert metrics[-1] < 0.2 * metrics[0]
    assert after[:3].max() < 0.01 and after[:3].max() < before[:3].max()  # within 1 cm
    assert after[7] < 0.1  # gripper open


def test_with_imitate_successes_the_agents_successful_episodes_count_as_demos():
    b = batch_of(np.random.default_rng(6), 8)
    b["demo"] = np.zeros(8, bool)
    b["reward"] = np.r_[0, 1, 0, 1, np.zeros(3), -1.0].astype(np.float32)
    cfg = TINY.replace(demo_actor_weight=1.0, demo_attention_weight=1.0)

    def demo_terms(imitate, success):
        torch.manual_seed(0)
        agent = ARMAgent(cfg.replace(imitate_successes=imitate), BOUNDS, "cpu")
        m = agent.update({**b, "success": success}, np.ones(8, np.float32))
        return m["actor_demo"], m["q_attention_demo"]

    two_successful_episodes = np.r_[np.ones(4), np.zeros(4)].astype(bool)  # rewarded or not
    assert all(v == 0 for v in demo_terms(False, two_successful_episodes))  # the paper: demos only
    assert all(v > 0 for v in demo_terms(True, two_successful_episodes))
    # a rewarded step is not imitated by itself: only what the replay flags as a success
    assert all(v == 0 for v in demo_terms(True, np.zeros(8, bool)))


def test_demo_attention_term_ranks_the_demo_pixel_higher():
    """The same 60 updates with and without the demo term: with it, fewer pixels outrank the demo
    pixel (the number of pixels whose min-head Q exceeds the demo pixel's, averaged)."""
    b = batch_of(np.random.default_rng(8), 16)
    b["demo"] = np.ones(16, bool)

    def pixels_above_demo(weight):
        torch.manual_seed(0)
        agent = ARMAgent(TINY.replace(demo_attention_weight=weight), BOUNDS, "cpu")
        demo_terms = [agent.update(b, np.ones(16, np.float32)).get("q_attention_demo") for _ in range(60)]
        with torch.no_grad():
            x = obs_tensor(torch.as_tensor(b["rgb"]), torch.as_tensor(b["point_cloud"]))
            q = agent.attention(x, torch.as_tensor(b["low_dim"])).min(dim=1).values
        at_demo = q[torch.arange(16), b["pixel"][:, 0], b["pixel"][:, 1]]
        return (q.flatten(1) > at_demo[:, None]).sum(1).float().mean().item(), demo_terms

    without, _ = pixels_above_demo(0.0)
    with_term, terms = pixels_above_demo(10.0)
    assert with_term < 0.85 * without, (with_term, without)
    assert terms[-1] < terms[20]


def test_without_attention_the_pose_agent_sees_the_whole_image():
    from arm_policy.config import without_attention

    cfg = without_attention(TINY)
    assert cfg.crop_size == cfg.image_size and not cfg.q_attention
    with pytest.raises(ValueError, match="whole image"):
        TINY.replace(q_attention=False)
    with pytest.raises(ValueError, match="q_attention=True"):
        ARMAgent(cfg, BOUNDS, "cpu")
    agent = SACAgent(cfg, BOUNDS, "cpu")
    assert isinstance(agent.attention, CentreCrop) and not list(agent.attention.parameters())
    b = batch_of(np.random.default_rng(9), 8)
    m = agent.update(b, np.ones(8, np.float32))
    assert "q_attention_loss" not in m and np.isfinite(m["critic_loss"])
    pixel, action, q_map = agent.act({k: b[k][0] for k in ("rgb", "point_cloud", "low_dim")}, True)
    assert tuple(pixel) == (8, 8) and action.shape == (8,) and not q_map.any()
    clone = from_checkpoint(agent.state_dict(), "cpu")
    assert isinstance(clone, SACAgent) and clone.updates == 1


def test_attention_only_picks_points_inside_the_widened_workspace():
    """With attention_workspace_margin the argmax (acting and the double-DQN target) skips pixels
    whose 3-D point is outside the action bounds + margin or has no depth, whatever their Q."""
    torch.manual_seed(0)
    bounds = np.array([[0.0, 0.0, 0.9], [0.2, 0.2, 1.1]], np.float32)
    agent = ARMAgent(TINY.replace(attention_workspace_margin=0.05), bounds, device="cpu")
    rng = np.random.default_rng(0)
    rgb, _, _ = scene(rng)
    pc = np.full((16, 16, 3), [1.0, 1.0, 1.0], np.float32)  # everything far outside...
    pc[10:12, 3:5] = [0.22, 0.1, 1.0]  # ...but a 2x2 patch within 5 cm of the bounds
    pc[10, 3] = np.nan  # (one of them without depth)
    for _ in range(5):
        low_dim = rng.normal(size=11).astype(np.float32)
        pixel, _, q_map = agent.act({"rgb": rgb, "point_cloud": pc, "low_dim": low_dim}, explore=False)
        assert tuple(pixel) in {(10, 4), (11, 3), (11, 4)}
        assert np.isfinite(q_map).all()  # the published heat map stays the raw Q
    # An image with no pixel in the workspace still gets a decision.
    far = np.full((16, 16, 3), 5.0, np.float32)
    pixel, _, _ = agent.act({"rgb": rgb, "point_cloud": far, "low_dim": low_dim}, explore=False)
    assert pixel.shape == (2,)


@pytest.mark.parametrize("relative", [True, False])
def test_the_demos_reach_widens_the_attention_workspace_per_axis(relative):
    """A pixel 20 cm beyond the bounds on x is attended when the demos reach 25 cm on x from
    their pixels' points (a free-space keyframe's pixel lies on what is behind it), not when they
    reach 10 cm; for the absolute actor as for the relative one."""
    bounds = np.array([[0.0, 0.0, 0.9], [0.2, 0.2, 1.1]], np.float32)
    pc = np.full((16, 16, 3), [1.0, 1.0, 1.0], np.float32)
    pc[5, 5] = [0.4, 0.1, 1.0]  # 20 cm past the bounds on x
    pc[12, 12] = [0.25, 0.1, 1.0]  # 5 cm past: inside either way
    obs = obs_tensor(torch.zeros(1, 16, 16, 3, dtype=torch.uint8), torch.as_tensor(pc)[None])
    q = torch.zeros(1, 16, 16)
    q[0, 5, 5] = 10.0  # the far pixel has the best Q
    cfg = TINY.replace(attention_workspace_margin=0.05, actor_relative_xyz=relative)
    for reach, attended in ((np.array([0.25, 0.1, 0.1]), (5, 5)), (0.1, (12, 12))):
        agent = ARMAgent(cfg, bounds, device="cpu", relative_range=reach)
        masked = agent._in_workspace(q.clone(), obs)
        assert tuple(divmod(int(masked.flatten().argmax()), 16)) == attended


def test_exploration_noise_scale_narrows_only_the_behaviour_policy():
    torch.manual_seed(0)
    actor = Actor(TINY, BOUNDS)
    x = obs_tensor(torch.zeros(1, 16, 16, 3, dtype=torch.uint8), torch.zeros(1, 16, 16, 3))
    crops, low_dim = crop(x, torch.tensor([[8, 8]]), 8).expand(500, -1, -1, -1), torch.zeros(500, 11)
    with torch.no_grad():
        wide, _, mean = actor(crops, low_dim)
        narrow, _, _ = actor(crops, low_dim, noise_scale=0.25)
    spread = lambda a: (a[:, :3] - mean[:, :3]).abs().mean().item()  # noqa: E731
    assert spread(narrow) < 0.4 * spread(wide)
    assert spread(narrow) > 0  # still exploring
