"""Every agent goes through a checkpoint and comes back as itself: the registry builds it from
the name and config the checkpoint carries, with the same weights and the same decisions."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from arm_policy.agents import AGENTS, Agent, agent_class, from_checkpoint
from arm_policy.config import without_attention

from test_paper_fidelity import BOUNDS, TINY_PAPER, batch


def build(name: str) -> Agent:
    cfg = without_attention(TINY_PAPER) if name == "sac" else TINY_PAPER
    return agent_class(name)(cfg, BOUNDS, device="cpu", seed=0)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_round_trips_through_a_checkpoint(name):
    agent = build(name)
    agent.update(batch(n=4, reward=1.0))
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone = from_checkpoint(torch.load(buf, weights_only=False), device="cpu")
    assert type(clone) is type(agent) and clone.name == name and clone.updates == 1
    assert clone.cfg == agent.cfg
    obs = {k: v[0] for k, v in batch(n=1, seed=3).items() if k in ("rgb", "point_cloud", "low_dim")}
    for a, b in zip(agent.act(obs, explore=False), clone.act(obs, explore=False)):
        assert np.allclose(a, b)


def test_a_checkpoint_from_before_the_registry_loads_by_its_method_or_as_arm():
    state = build("bc").state_dict()
    state["method"] = state.pop("agent")
    assert from_checkpoint(state).name == "bc"
    state = build("arm").state_dict()
    del state["agent"]
    assert from_checkpoint(state).name == "arm"


def test_an_unknown_agent_name_is_refused_with_the_known_ones():
    state = build("arm").state_dict()
    state["agent"] = "dqn"
    with pytest.raises(KeyError, match="unknown agent 'dqn'; known: arm, sac, bc"):
        from_checkpoint(state)
