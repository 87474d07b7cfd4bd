"""The learner's speed-ups change how an update is computed, never what it computes: each is
compared with the plain computation on a fixed batch, within a stated tolerance."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from arm_policy.agents import ARMAgent, NumericalError, resolve_device
from arm_policy.config import PRESETS, ARMConfig
from arm_policy.networks import QAttention, _OneChannelConv

from test_paper_fidelity import BOUNDS, TINY_PAPER, batch

#: bf16 keeps 8 mantissa bits: a loss after one update on the same weights and batch may move by
#: this much relative to fp32 (bench_learning.py checks 50 updates against LOSS_TOLERANCE).
BF16_LOSS_TOLERANCE = 0.05


def test_the_one_channel_head_is_the_plain_3x3_conv_with_the_same_parameters():
    head = _OneChannelConv(13, 3)
    x = torch.randn(2, 13, 12, 12, requires_grad=True)
    plain = F.conv2d(x, head.weight, head.bias, padding=1)
    assert torch.allclose(head(x), plain, atol=1e-5)
    assert [name for name, _ in head.named_parameters()] == ["weight", "bias"]  # checkpoints load
    grad_head = torch.autograd.grad(head(x).sum(), (x, head.weight))
    grad_plain = torch.autograd.grad(plain.sum(), (x, head.weight))
    for a, b in zip(grad_head, grad_plain):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_q_attention_with_its_stems_fused_is_each_head_on_its_own(name):
    cfg = PRESETS[name].replace(image_size=16)
    net = QAttention(cfg)
    obs, low_dim = torch.randn(3, 7, 16, 16), torch.randn(3, 11)
    separate = torch.stack([head(obs, low_dim) for head in net.heads], dim=1)
    assert torch.allclose(net(obs, low_dim), separate, atol=1e-5)


def test_a_strided_q_attention_runs_its_u_net_at_half_resolution_and_maps_every_pixel():
    cfg = TINY_PAPER.replace(attention_stride=2)
    net = QAttention(cfg)
    obs, low_dim = torch.randn(3, 7, 16, 16), torch.randn(3, 11)
    assert net._stems(obs).shape[-2:] == (8, 8)
    q = net(obs, low_dim)
    assert q.shape == (3, 2, 16, 16)
    separate = torch.stack([head(obs, low_dim) for head in net.heads], dim=1)
    assert torch.allclose(q, separate, atol=1e-5)
    with pytest.raises(ValueError, match="attention_stride"):
        TINY_PAPER.replace(image_size=20, attention_stride=2)  # 20 / 2 / 4 is not whole
    with pytest.raises(ValueError, match="attention_stride"):
        TINY_PAPER.replace(attention_stride=0)


@pytest.mark.parametrize("target", [(5, 9), (6, 8)])
def test_a_strided_q_attention_can_put_its_maximum_on_either_half_of_a_coarse_cell(target):
    torch.manual_seed(0)
    net = QAttention(TINY_PAPER.replace(attention_stride=2))
    obs, low_dim = torch.randn(1, 7, 16, 16), torch.randn(1, 11)
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    bump = 10.0 * torch.exp(-((rows - target[0]) ** 2 + (cols - target[1]) ** 2) / 2.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        loss = F.mse_loss(net(obs, low_dim), bump.expand(1, 2, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = net(obs, low_dim)
    for head in range(2):
        assert QAttention.argmax_pixel(q[:, head]).tolist() == [list(target)]


def test_one_update_and_one_decision_with_a_strided_q_attention():
    agent = ARMAgent(TINY_PAPER.replace(attention_stride=2), BOUNDS, device="cpu", seed=0)
    losses = agent.update(batch(reward=1.0, n=8))
    assert all(np.isfinite(losses[k]) for k in ("q_attention_loss", "critic_loss", "actor_loss"))
    obs = {k: v[0] for k, v in batch(n=1).items() if k in ("rgb", "point_cloud", "low_dim")}
    decision = agent.act(obs, explore=False)
    assert all(0 <= p < 16 for p in decision.pixel)


def test_bf16_autocast_keeps_one_update_within_tolerance_of_fp32():
    losses = {}
    for amp in ("off", "bf16"):
        agent = ARMAgent(TINY_PAPER.replace(amp=amp), BOUNDS, device="cpu", seed=0)
        torch.manual_seed(1)  # the same policy noise
        losses[amp] = agent.update(batch(reward=1.0, n=8))
    for key in ("q_attention_loss", "critic_loss", "actor_loss"):
        fp32, bf16 = losses["off"][key], losses["bf16"][key]
        assert abs(bf16 - fp32) <= BF16_LOSS_TOLERANCE * max(abs(fp32), 1.0), (key, fp32, bf16)
    assert np.allclose(losses["off"]["priorities"], losses["bf16"]["priorities"],
                       rtol=BF16_LOSS_TOLERANCE, atol=0.5)


def test_bf16_autocast_acts_like_fp32_and_keeps_fp32_weights():
    fp32 = ARMAgent(TINY_PAPER, BOUNDS, device="cpu", seed=0)
    bf16 = ARMAgent(TINY_PAPER.replace(amp="bf16"), BOUNDS, device="cpu", seed=0)
    obs = {k: v[0] for k, v in batch(n=1).items() if k in ("rgb", "point_cloud", "low_dim")}
    _, action32, q32 = fp32.act(obs, explore=False)
    _, action16, q16 = bf16.act(obs, explore=False)
    assert action16.dtype == np.float32 and q16.dtype == np.float32
    assert np.allclose(action16, action32, atol=0.05)
    for explore in (False, True):  # the pose head runs in fp32: a unit quaternion, as in fp32
        action = bf16.act(obs, explore=explore).action
        assert abs(np.linalg.norm(action[3:7]) - 1.0) < 1e-5, action
    assert np.abs(q16 - q32).max() <= 0.05 * max(1.0, np.abs(q32).max())
    bf16.update(batch(n=8))
    assert all(p.dtype == torch.float32 for p in bf16.attention.parameters())


def test_an_unknown_amp_mode_is_refused():
    with pytest.raises(ValueError, match="amp"):
        ARMConfig(amp="fp8")


def test_cuda_where_there_is_none_is_a_clear_error_and_auto_falls_back_to_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error case cannot arise")  # CI has none
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        ARMAgent(TINY_PAPER, BOUNDS, device="cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="choose cpu, cuda or auto"):
        resolve_device("meta")


def test_deferred_checks_of_a_gpu_update_still_name_the_non_finite_part():
    """On a GPU the finiteness checks wait for the update's one sync; the same code path runs
    here by deferring by hand."""
    agent = ARMAgent(TINY_PAPER, BOUNDS, device="cpu", seed=0)
    agent._deferred_checks = []
    agent._check("critic loss", torch.tensor(1.0))
    agent._check("actor gradient norm", torch.tensor(float("nan")))
    with pytest.raises(NumericalError, match="actor gradient norm"):
        agent._metrics({"x": torch.tensor(0.0)}, torch.zeros(1))
    assert agent._deferred_checks is None  # later checks are immediate again
    with pytest.raises(NumericalError, match="log_alpha"):
        agent._deferred_checks = []  # as an interrupted GPU update would leave it
        with torch.no_grad():
            agent.log_alpha.fill_(float("inf"))
        agent.check_parameters()


def test_a_checkpoint_written_before_the_rewrites_loads_into_the_same_parameter_names():
    net = QAttention(TINY_PAPER)
    names = {name for name, _ in net.named_parameters()}
    assert {"heads.0.head.weight", "heads.0.stem.rgb.0.weight", "heads.1.stem.pcd.0.bias"} <= names
    assert isinstance(net.heads[0].head, nn.Conv2d)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bfloat16_warns_that_it_is_emulated(monkeypatch, native):
    import warnings

    from arm_policy.agents import base

    monkeypatch.setattr(base, "native_cpu_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ARMAgent(TINY_PAPER.replace(amp="bf16"), BOUNDS, device="cpu", seed=0)
        ARMAgent(TINY_PAPER, BOUNDS, device="cpu", seed=0)  # fp32 never warns
    emulated = [w for w in caught if "emulated" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
    assert native or "amp='off'" in str(emulated[0].message)


@pytest.mark.parametrize("native", [False, True])
def test_amp_auto_is_bf16_exactly_where_the_cpu_computes_bfloat16_natively(monkeypatch, native):
    import warnings

    from arm_policy.agents import base

    monkeypatch.setattr(base, "native_cpu_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = ARMAgent(TINY_PAPER.replace(amp="auto"), BOUNDS, device="cpu", seed=0)
    assert agent.cfg.amp == "auto"  # the config (and its checkpoint) keeps the choice, not the outcome
    assert agent.amp == ("bf16" if native else "off")
    assert not [w for w in caught if "emulated" in str(w.message)]  # auto never picks the slow path
    with pytest.raises(ValueError, match="amp 'fp16' must be one of off, bf16, auto"):
        TINY_PAPER.replace(amp="fp16")
