"""The QT-Opt agent: clipped double-Q targets at theta_1's CEM argmax, the Polyak average and the
lag of the target networks, acting, checkpoints through the registry, a learning smoke test, and
bad input refused. Small networks: every test takes a few seconds at most."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parameters_to_vector

from arm_policy.agents import AGENTS, NumericalError, from_checkpoint
from arm_policy.agents.qtopt import (QNetwork, QTOptAgent, QTOptConfig, action_vector,
                                     search_vector)
from arm_policy.config import ARMConfig
from arm_policy.replay import PrioritizedReplay

TINY = QTOptConfig(image_size=16, conv_channels=(8, 8), embed_hidden=16, head_channels=8,
                   head_hidden=16, batch_size=8, replay_capacity=64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def agent(cfg: QTOptConfig = TINY, seed: int = 0) -> QTOptAgent:
    return QTOptAgent(cfg, device="cpu", seed=seed)


def batch(n=8, size=16, reward=0.0, terminal=False, timeout=False, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def image():
        return rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)

    def state():
        return np.stack([rng.integers(0, 2, n), rng.uniform(0.0, 0.3, n)], 1).astype(np.float32)

    x = np.concatenate([rng.uniform(-0.03, 0.03, (n, 3)), rng.uniform(-0.25, 0.25, (n, 1)),
                        rng.integers(0, 2, (n, 2))], 1)
    action = action_vector(torch.as_tensor(x)).numpy().astype(np.float32)
    return {"rgb": image(), "state": state(), "action": action,
            "reward": np.full(n, reward, np.float32), "terminal": np.full(n, terminal),
            "timeout": np.full(n, timeout), "next_rgb": image(), "next_state": state()}


def obs(seed=0, size=16, **state):
    rgb = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return {"rgb": rgb, "gripper_open": 1.0, "gripper_height": 0.2, "gripper_aperture": 1.0, **state}


# --------------------------------------------------------------------------- targets


class KnownQ(nn.Module):
    """A stand-in Q-network with a known logit: ``w_term`` terminate + ``w_close`` close +
    ``w_bright`` x the image's brightness (0 black .. 1 white); the continuous part is ignored."""

    score = QNetwork.score

    def __init__(self, w_term: float, w_close: float, w_bright: float):
        super().__init__()
        self.w = (w_term, w_close, w_bright)

    def encode(self, image):
        return (image.mean(dim=(1, 2, 3)) + 0.5)[:, None, None, None]  # (B, 1, 1, 1)

    def head(self, features, state, action):
        w_term, w_close, w_bright = self.w
        return w_term * action[:, 6] + w_close * action[:, 5] + w_bright * features[:, 0, 0, 0]


def test_the_target_is_the_minimum_of_both_target_networks_at_theta_1s_argmax():
    """theta_1's logit 2 term + close peaks at (close, terminate) = (1, 1) with logit 3;
    theta_2's 6 brightness - 2 term would rather not terminate. At a* = (1, 1) the smaller of the
    two is theta_2's on a black image (logit -2) and theta_1's on a white one (3 < 4). Taking
    theta_2's own argmax, or the larger value, or min over actions, gives other numbers."""
    a = agent()
    a.target_1, a.target_2 = KnownQ(2.0, 1.0, 0.0), KnownQ(-2.0, 0.0, 6.0)
    b = batch(n=6, reward=0.1)
    b["next_rgb"][:3] = 0
    b["next_rgb"][3:] = 255
    b["terminal"][[2, 5]] = True  # an end: y = r only
    b["timeout"][5] = True  # ... unless a timeout, which bootstraps
    t = a.batch_tensors(b)
    a_star, _ = a._cem(a.target_1, a.target_1.encode(t["next_image"]), t["next_state"])
    assert torch.equal(a_star[:, 5:], torch.ones(6, 2))  # theta_1's argmax: close and terminate
    v = [1 / (1 + math.exp(2))] * 3 + [1 / (1 + math.exp(-3))] * 3  # sigmoid(-2), sigmoid(3)
    bootstrap = [1, 1, 0, 1, 1, 1]
    expected = torch.tensor([0.1 + 0.9 * bs * vi for bs, vi in zip(bootstrap, v)])
    assert torch.allclose(a.targets(t), expected, atol=1e-6)


def test_targets_are_clamped_to_the_cross_entropys_range_and_a_labelled_batch_is_used_as_is():
    a = agent()
    a.target_1 = a.target_2 = KnownQ(0.0, 0.0, -50.0)  # Q ~ 0 everywhere
    b = batch(n=4, reward=-0.05)
    b["next_rgb"][:] = 255
    assert torch.allclose(a.targets(a.batch_tensors(b)), torch.zeros(4), atol=1e-6)
    b = batch(n=4, reward=1.0, terminal=True)
    assert torch.allclose(a.targets(a.batch_tensors(b)), torch.ones(4))
    labelled = dict(batch(n=4), target=np.array([0.0, 1.0, 0.25, 0.5], np.float32))
    a = agent()
    m = a.update(labelled)  # the Bellman updater's labels, not relabelled here
    assert abs(m["target_mean"] - 0.4375) < 1e-6


# --------------------------------------------------------------------------- target networks


def theta(net: nn.Module) -> torch.Tensor:
    return parameters_to_vector(net.parameters()).detach().clone()


@pytest.mark.parametrize("every", [1, 2])
def test_theta_2_is_theta_1_of_lag_updates_ago_exactly(every):
    lag = 3
    a = agent(TINY.replace(lag_updates=lag, lag_snapshot_every=every, polyak=0.5, lr=1e-2))
    history = [theta(a.target_1)]  # theta_1 after update k, k = 0 (initial), 1, 2, ...
    assert torch.equal(theta(a.target_2), history[0])
    for k in range(1, 10):
        before, online_before = theta(a.target_1), theta(a.q)
        a.update(batch(seed=k, reward=1.0, terminal=True))
        # Polyak: theta_1 <- 0.5 theta_1 + 0.5 theta (theta after its step)
        assert torch.allclose(theta(a.target_1), 0.5 * before + 0.5 * theta(a.q), atol=1e-6)
        assert not torch.equal(theta(a.q), online_before)
        history.append(theta(a.target_1))
        due = k - lag
        held = 0 if due < 0 else due - due % every  # the newest snapshot at or before k - lag
        assert torch.equal(theta(a.target_2), history[held]), (k, held)
        assert a.lag_of_theta_2 == held
        assert not torch.equal(theta(a.target_2), history[k])  # it really lags
    assert len(a._lag) <= lag // every + 2  # only the snapshots still to come are kept


def test_the_cpu_scaling_of_the_target_networks_keeps_the_papers_ratio():
    cpu, paper = QTOptConfig(), QTOptConfig.paper()
    assert paper.polyak == 0.9999 and paper.lag_updates == 6000
    assert paper.polyak_time_constant == pytest.approx(10_000)
    assert cpu.polyak_time_constant == pytest.approx(200)
    assert cpu.lag_updates / cpu.polyak_time_constant == pytest.approx(0.6)
    assert paper.lag_updates / paper.polyak_time_constant == pytest.approx(0.6)


def test_once_online_grasps_exist_half_of_each_batch_is_online_and_weighs_as_much_as_the_offline_half():
    cfg = QTOptConfig(image_size=16, conv_channels=(8, 8), batch_size=32)
    replay = PrioritizedReplay.from_config(cfg, seed=0, fields=agent(cfg).replay_fields())
    one = {k: v[0] for k, v in batch(n=1).items()}
    replay.extend([one] * 600, demo=True)  # the scripted grasps: 30x the agent's own
    replay.extend([one] * 20, demo=False)
    for _ in range(3):
        sampled, _, weights = replay.sample(32)
        assert int(sampled["demo"].sum()) == 16  # the paper's half and half
        np.testing.assert_array_equal(weights, 1.0)  # uniform, as the paper: no weighing back


# --------------------------------------------------------------------------- acting


def test_act_returns_no_pixel_a_bounded_7d_action_and_no_map():
    a = agent()
    decision = a.act(obs(), explore=False)
    pixel, action, attention = decision  # the PolicyOutput is a tuple too
    assert pixel is None and attention is None and decision.action is action
    assert action.shape == (7,) and action.dtype == np.float32
    assert np.all(np.abs(action[:3]) <= TINY.max_displacement + 1e-7)
    assert action[3] ** 2 + action[4] ** 2 == pytest.approx(1.0, abs=1e-6)
    assert abs(math.atan2(action[3], action[4])) <= TINY.max_yaw + 1e-6
    assert set(action[5:].tolist()) <= {0.0, 1.0}
    assert np.allclose(search_vector(action_vector(torch.as_tensor(
        [[0.01, -0.02, 0.03, 0.2, 1.0, 0.0]]))).numpy(), [[0.01, -0.02, 0.03, 0.2, 1.0, 0.0]], atol=1e-6)
    # epsilon 1: every action random, inside the bounds, terminate rare
    a = agent(TINY.replace(epsilon=1.0, random_terminate_prob=0.1))
    actions = np.stack([a.act(obs(), explore=True).action for _ in range(200)])
    assert np.all(np.abs(actions[:, :3]) <= TINY.max_displacement + 1e-7)
    assert 0.3 < actions[:, 5].mean() < 0.7 and actions[:, 6].mean() < 0.25


def test_the_greedy_action_is_theta_1s_cem_argmax_and_repeats_with_the_seed():
    a, b = agent(seed=3), agent(seed=3)
    assert np.array_equal(a.act(obs(), False).action, b.act(obs(), False).action)
    a.target_1 = KnownQ(-3.0, 2.0, 0.0)  # never terminate, always close
    assert a.act(obs(), explore=False).action[5:].tolist() == [1.0, 0.0]


# --------------------------------------------------------------------------- replay and checkpoints


def test_the_projects_learner_trains_it_through_its_replay_fields(tmp_path, monkeypatch):
    """Learner.update: replay.sample -> agent.update -> replay.update_priorities(TD errors)."""
    from arm_policy.checkpoints import list_checkpoints, load_latest_valid
    from arm_policy.learner import Learner, LearnerSettings

    a = agent()
    replay = PrioritizedReplay.from_config(a.cfg, seed=0, fields=a.replay_fields())
    monkeypatch.setitem(AGENTS, "qtopt", QTOptAgent)
    learner = Learner(a, replay, tmp_path, LearnerSettings(updates_per_step=1, checkpoint_every=3))
    b = batch(n=12)
    for i in range(12):
        learner.observe({k: v[i] for k, v in b.items()})
    learner.end_episode(success=False)
    assert len(replay) == 12 and learner.train() == 12 and a.updates == 12
    assert set(learner.last_metrics) == {"q_loss", "q_mean", "target_mean", "td", "q_accuracy"}
    sample, idx, weights = replay.sample(a.cfg.batch_size)
    assert np.all(weights == 1.0)  # replay_alpha 0: uniform, as the paper
    metrics = a.update(sample, weights)
    p = metrics.pop("priorities")
    assert p.shape == (a.cfg.batch_size,) and np.all(p >= 0) and abs(p.mean() - metrics["td"]) < 1e-6
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert len(list_checkpoints(tmp_path)) == 4  # every 3 updates, and they load
    assert from_checkpoint(load_latest_valid(tmp_path).state).updates == 12


def test_the_final_checkpoint_carries_the_runs_last_progress_even_at_a_checkpointed_count(tmp_path, monkeypatch):
    """A resumed run keeps its evaluations up to the checkpoint's progress: the final evaluation,
    after the last update's checkpoint, must reach the final one."""
    from arm_policy.checkpoints import list_checkpoints, load_latest_valid
    from arm_policy.learner import Learner, LearnerSettings

    monkeypatch.setitem(AGENTS, "qtopt", QTOptAgent)
    progress = {"env_steps": 12}
    a = agent()
    replay = PrioritizedReplay.from_config(a.cfg, seed=0, fields=a.replay_fields())
    learner = Learner(a, replay, tmp_path, LearnerSettings(updates_per_step=1, checkpoint_every=3),
                      extra_state=lambda: {"progress": dict(progress)})
    b = batch(n=12)
    for i in range(12):
        learner.observe({k: v[i] for k, v in b.items()})
    learner.end_episode(success=False)
    assert learner.train() == 12 and list_checkpoints(tmp_path)[-1].name == "step_000000012.pt"
    progress["env_steps"] = 15  # the final evaluation's, after update 12 was checkpointed
    assert learner.close() is not None
    assert load_latest_valid(tmp_path).state["progress"] == {"env_steps": 15}


def test_decision_latency_is_measured_and_the_thread_count_restored():
    from arm_policy.agents.qtopt.latency import decision_latency

    threads = torch.get_num_threads()
    r = decision_latency(TINY, decisions=3, warmup=1, threads=1)
    assert r["threads"] == 1 and 0 < r["median_ms"] <= r["max_ms"]
    assert torch.get_num_threads() == threads


def test_a_checkpoint_round_trips_through_the_registry_and_resumes_exactly(tmp_path, monkeypatch):
    from arm_policy.checkpoints import load_latest_valid, save_checkpoint

    monkeypatch.setitem(AGENTS, "qtopt", QTOptAgent)
    a = agent(TINY.replace(lag_updates=2, lag_snapshot_every=1))
    for k in range(4):
        a.update(batch(seed=k, reward=1.0, terminal=True))
    save_checkpoint(tmp_path, a.updates, a.state_dict())  # loaded back with weights_only=True
    clone = from_checkpoint(load_latest_valid(tmp_path).state, device="cpu")
    assert type(clone) is QTOptAgent and clone.name == "qtopt" and clone.updates == 4
    assert clone.cfg == a.cfg
    for net in ("q", "target_1", "target_2"):
        assert torch.equal(theta(getattr(clone, net)), theta(getattr(a, net)))
    assert np.array_equal(clone.act(obs(1), False).action, a.act(obs(1), False).action)
    m_a, m_c = a.update(batch(seed=9)), clone.update(batch(seed=9))  # same CEM samples, same step
    assert m_a.pop("priorities").tolist() == m_c.pop("priorities").tolist() and m_a == m_c
    assert torch.equal(theta(clone.target_2), theta(a.target_2))


def test_configure_keeps_a_qtopt_config_and_refuses_arms_and_the_config_round_trips():
    assert QTOptAgent.configure(TINY) is TINY
    with pytest.raises(ValueError, match="QTOptConfig"):
        QTOptAgent.configure(ARMConfig())
    with pytest.raises(TypeError, match="QTOptConfig"):
        QTOptAgent(ARMConfig())
    assert QTOptConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown QTOptConfig fields"):
        QTOptConfig.from_dict({**TINY.to_dict(), "tau": 0.1})
    with pytest.raises(ValueError, match="multiple of 8"):
        QTOptConfig(image_size=20, conv_channels=(8, 8))
    assert QTOptAgent.from_demos(TINY, demos=[], device="cpu", seed=0).updates == 0


# --------------------------------------------------------------------------- learning


def bright_pixel_batch(rng: np.random.Generator, n: int, size: int = 16) -> dict[str, np.ndarray]:
    """One-step episodes: terminating with a bright 4x4 patch in view (anywhere) pays 1,
    anything else 0. (Learnt by 150 updates from every seed tried, 0-5.)"""
    rgb = np.full((n, size, size, 3), 40, np.uint8)
    bright = rng.random(n) < 0.5
    for i in np.flatnonzero(bright):
        r, c = rng.integers(0, size - 4, 2)
        rgb[i, r:r + 4, c:c + 4] = 255
    x = np.concatenate([rng.uniform(-0.03, 0.03, (n, 3)), rng.uniform(-0.25, 0.25, (n, 1)),
                        rng.integers(0, 2, (n, 2))], 1)
    action = action_vector(torch.as_tensor(x)).numpy().astype(np.float32)
    state = np.tile(np.float32([1.0, 0.1]), (n, 1))
    return {"rgb": rgb, "state": state, "action": action,
            "reward": (bright & (action[:, 6] == 1)).astype(np.float32),
            "terminal": np.ones(n, bool), "timeout": np.zeros(n, bool),
            "next_rgb": rgb, "next_state": state}


def test_q_learns_that_terminating_with_a_bright_pixel_in_view_pays():
    torch.manual_seed(0)
    a = agent(TINY.replace(lr=3e-3, batch_size=32, polyak=0.8), seed=0)
    rng = np.random.default_rng(0)
    held_out = bright_pixel_batch(np.random.default_rng(99), 256)

    def evaluate():
        with torch.no_grad():
            t = a.batch_tensors(held_out)
            loss, logits, _ = a._q_loss(t, t["reward"])
            q = torch.sigmoid(logits)
        return float(loss), float(((q > 0.5) == (t["reward"] > 0.5)).float().mean())

    loss_0, acc_0 = evaluate()
    for _ in range(200):
        a.update(bright_pixel_batch(rng, 32))
    loss_1, acc_1 = evaluate()
    assert loss_1 < 0.5 * loss_0 and acc_1 > 0.9 and acc_1 > acc_0, (loss_0, loss_1, acc_0, acc_1)
    # the greedy policy (theta_1) terminates when the bright patch is in view
    bright = bright_pixel_batch(np.random.default_rng(5), 64)
    seen = [i for i in range(64) if bright["rgb"][i].max() == 255][:5]
    for i in seen:
        seen_obs = {"rgb": bright["rgb"][i], "gripper_open": 1.0, "gripper_height": 0.1, "gripper_aperture": 1.0}
        assert a.act(seen_obs, explore=False).action[6] == 1.0


# --------------------------------------------------------------------------- bad input


def test_the_conservative_term_pushes_q_down_on_actions_the_data_never_tried():
    """Every batch tries one action and is labelled 1: without the term Q spreads that value to
    actions never tried (CEM's argmax then exploits them); with it they sit below the tried one."""
    data = batch(n=32, seed=3)
    data["action"][:] = data["action"][0]
    data["target"] = np.ones(32, np.float32)

    def gap(weight):
        a = agent(TINY.replace(lr=3e-3, batch_size=32, conservative_weight=weight), seed=0)
        for _ in range(60):
            metrics = a.update(data)
        with torch.no_grad():
            t = a.batch_tensors(data)
            features = a.q.encode(t["image"])
            tried = torch.sigmoid(a.q.head(features, t["state"], t["action"])).mean()
            untried = torch.sigmoid(a.q.score(features, t["state"], a._random_actions(32))).mean()
        return float(tried - untried), metrics

    plain, plain_metrics = gap(0.0)
    conservative, metrics = gap(1.0)
    assert "conservative_penalty" in metrics and "conservative_penalty" not in plain_metrics
    assert conservative > plain + 0.3


def test_non_finite_input_is_refused_naming_what():
    a = agent()
    with pytest.raises(ValueError, match="'gripper_height' is not finite"):
        a.act(obs(gripper_height=float("nan")), explore=False)
    with pytest.raises(ValueError, match=r"images must be \(B, 16, 16, 3\) uint8"):
        a.act(obs(size=32), explore=False)
    b = batch()
    b["state"][2, 1] = np.nan
    with pytest.raises(NumericalError, match="batch field 'state'"):
        a.update(b)
    with pytest.raises(NumericalError, match="Q loss"):
        a.update(batch(), weights=np.full(8, np.nan, np.float32))
    assert a.updates == 0
    with torch.no_grad():
        next(a.q.parameters())[0].fill_(float("inf"))
    with pytest.raises(NumericalError, match="q parameter"):
        a.state_dict()


# --------------------------------------------------------------------------- inputs and augmentation


def test_normalised_inputs_scale_height_and_displacement_and_stay_out_of_checkpoints():
    from arm_policy.agents.qtopt.network import HEIGHT_SCALE

    raw = QNetwork(TINY.replace(normalize_inputs=False))
    norm = QNetwork(TINY.replace(normalize_inputs=True))
    assert torch.all(raw.input_scale == 1)
    scale = norm.input_scale
    assert scale[1] == pytest.approx(1 / HEIGHT_SCALE)
    assert torch.allclose(scale[2:5], torch.full((3,), 1 / TINY.max_displacement))
    assert torch.all(scale[[0, 5, 6, 7, 8]] == 1)
    assert "input_scale" not in norm.state_dict()  # checkpoints of either kind load into both
    norm.load_state_dict(raw.state_dict())
    # a full-range displacement now moves the embedding's input by 1, as a flag does
    x = torch.zeros(1, 9)
    x[0, 2] = TINY.max_displacement
    assert float((x * scale)[0, 2]) == pytest.approx(1.0)


def test_random_shift_moves_each_image_by_at_most_pad_pixels_and_updates_use_it():
    from arm_policy.agents.qtopt.network import random_shift

    g = torch.Generator().manual_seed(0)
    img = torch.zeros(16, 3, 12, 12)
    img[:, :, 6, 6] = 1.0  # one bright pixel in the middle
    out = random_shift(img, 2, g)
    assert out.shape == img.shape and torch.equal(random_shift(img, 0, g), img)
    where = [divmod(int(o[0].flatten().argmax()), 12) for o in out]
    assert all(abs(y - 6) <= 2 and abs(x - 6) <= 2 for y, x in where)
    assert len(set(where)) > 1  # independent per image
    a = agent(TINY.replace(image_shift=2))
    metrics = a.update(batch())
    assert np.isfinite(metrics["q_loss"]) and a.updates == 1


def test_a_config_saved_before_the_input_fields_existed_keeps_its_old_network():
    from arm_policy.agents.qtopt.config import LEGACY_VALUES

    old = {k: v for k, v in TINY.to_dict().items() if k not in LEGACY_VALUES}
    cfg = QTOptConfig.from_dict(old)
    assert not cfg.normalize_inputs and cfg.image_shift == 0 and not cfg.state_aperture
    assert cfg.scripted_random_action_prob == 0.0
    assert torch.all(QNetwork(cfg).input_scale == 1)
    # today's defaults are what the measurements favoured
    new = QTOptConfig()
    assert new.normalize_inputs and new.image_shift > 0 and new.state_aperture
