"""Every agent goes through a checkpoint and comes back as itself: the registry builds it from
the name and config the checkpoint carries, with the same weights and the same decisions."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from arm_policy.agents import AGENTS, Agent, agent_class, from_checkpoint

from test_paper_fidelity import BOUNDS, TINY_PAPER, batch


def build(name: str) -> Agent:
    if name == "qtopt":
        from test_qtopt import TINY

        return agent_class(name)(TINY, device="cpu", seed=0)
    return agent_class(name)(agent_class(name).configure(TINY_PAPER), BOUNDS, device="cpu", seed=0)


def batch_and_observation(name: str):
    """A small replay batch of the agent's own fields, and one observation it acts on."""
    if name == "qtopt":
        from test_qtopt import batch as qtopt_batch

        b = qtopt_batch(n=4, reward=1.0)
        return b, {"rgb": b["rgb"][0], "gripper_open": 1.0, "gripper_height": 0.1, "gripper_aperture": 1.0}
    obs = {k: v[0] for k, v in batch(n=1, seed=3).items() if k in ("rgb", "point_cloud", "low_dim")}
    return batch(n=4, reward=1.0), obs


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_round_trips_through_a_checkpoint(name):
    agent = build(name)
    train_batch, obs = batch_and_observation(name)
    assert set(agent.replay_fields()) <= set(train_batch)  # it declares what it learns from
    agent.update(train_batch)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone = from_checkpoint(torch.load(buf, weights_only=False), device="cpu")
    assert type(clone) is type(agent) and clone.name == name and clone.updates == 1
    assert clone.cfg == agent.cfg
    for a, b in zip(agent.act(obs, explore=False), clone.act(obs, explore=False)):
        assert (a is None and b is None) or np.allclose(a, b)


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
    with pytest.raises(KeyError, match="unknown agent 'dqn'; known: arm, sac, bc, qtopt"):
        from_checkpoint(state)


def test_a_new_agent_needs_only_its_class_and_a_registry_line(tmp_path, monkeypatch):
    """What a newcomer writes: a subclass and one AGENTS entry. The in-process trainer, the
    learner, the checkpoints, the evaluation and the plots then take it by name."""
    import json

    from arm_policy.agents import BCAgent
    from arm_policy.train_inprocess import TrainSettings, train

    class FrozenAttentionBC(BCAgent):  # BC that never moves its Q-attention
        name, label = "frozen_bc", "BC, attention frozen"

        def _step(self, part, loss, optimiser, params):
            if part != "q_attention":
                super()._step(part, loss, optimiser, params)

    monkeypatch.setitem(AGENTS, "frozen_bc", FrozenAttentionBC)
    run = tmp_path / "run"
    summary = train(TrainSettings(task="reach_target", method="frozen_bc", demos=2, minutes=0.2,
                                  out=str(run), eval_every=5, eval_episodes=1, updates_per_step=1,
                                  agent_overrides={"image_size": 32, "batch_size": 8}),
                    log=lambda line: None)
    assert summary["method"] == "frozen_bc" and summary["updates"] >= 1
    from arm_policy.checkpoints import load_latest_valid

    state = load_latest_valid(run).state
    agent = from_checkpoint(state)
    assert type(agent) is FrozenAttentionBC and agent.updates == summary["updates"]
    from arm_policy.demo_dataset import load_demos

    untrained = FrozenAttentionBC.from_demos(agent.cfg, load_demos(run / "demos", "reach_target"),
                                             device="cpu", seed=0)  # the run's initial weights
    for key, value in untrained.attention.state_dict().items():  # attention frozen...
        assert torch.equal(value, agent.attention.state_dict()[key])
    assert any(not torch.equal(value, agent.actor.state_dict()[key])  # ... the actor trained
               for key, value in untrained.actor.state_dict().items())
    assert json.loads((run / "config.json").read_text())["config"]["train"]["method"] == "frozen_bc"


@pytest.mark.parametrize("name", ["arm", "sac", "qtopt"])
def test_a_bellman_updaters_labels_train_the_learner_as_its_own_targets_would(name):
    """What a distributed run relies on: an agent built elsewhere from the published networks
    acts like the learner and labels a batch with the learner's own targets (QT-Opt's without
    its image shift, which the learner draws before its targets: an updater labels unshifted images)."""
    learner, twin = build(name), build(name)
    if name == "qtopt":
        from test_qtopt import TINY

        learner, twin = (agent_class(name)(TINY.replace(image_shift=0), device="cpu", seed=0) for _ in range(2))
    twin.load_state_dict(learner.state_dict())
    b, obs = batch_and_observation(name)
    updater = agent_class(name).from_target_state(learner.target_state(), device="cpu", seed=0)  # the same CEM draws
    torch.manual_seed(2)
    acted = updater.act(obs, explore=False)
    torch.manual_seed(2)
    np.testing.assert_allclose(acted[1], learner.act(obs, explore=False)[1], rtol=1e-5, atol=1e-6)
    torch.manual_seed(1)
    labels = updater.bellman_labels(b)
    torch.manual_seed(1)
    own = learner.update(b)  # its own targets first, from the same random draws
    labelled = twin.update({**b, **labels})
    for key in [k for k in own if k.endswith("_loss") and not k.startswith("actor") and not k.startswith("alpha")]:
        assert labelled[key] == pytest.approx(own[key], rel=1e-5), key
