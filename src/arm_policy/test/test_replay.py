"""Prioritised replay: proportional sampling, priority updates, importance weights, storage."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from arm_policy.config import PRESETS
from arm_policy.agents.arm import arm_replay_fields
from arm_policy.replay import PrioritizedReplay, SumTree

H = 8
FIELDS = arm_replay_fields(H, 11)  # what ARM declares for its transitions


def _transition(i: int) -> dict:
    pc = np.full((H, H, 3), float(i), np.float32)
    pc[0, 0] = np.nan
    return dict(rgb=np.full((H, H, 3), i % 256, np.uint8), point_cloud=pc,
                low_dim=np.full(11, i, np.float32), pixel=np.array([i % H, 1]),
                action=np.full(8, i, np.float32), reward=float(i), terminal=bool(i % 2),
                next_rgb=np.zeros((H, H, 3), np.uint8), next_point_cloud=pc,
                next_low_dim=np.zeros(11, np.float32), next_pixel=np.array([1, i % H]))


def _filled(n: int, alpha: float = 1.0, **kw) -> PrioritizedReplay:
    r = PrioritizedReplay(capacity=n, alpha=alpha, seed=0, fields=FIELDS, **kw)
    for i in range(n):
        r.add(_transition(i))
    return r


def test_sum_tree_find():
    t = SumTree(5)
    t.set(np.arange(5), [1, 2, 3, 4, 0])
    assert t.total == 10
    np.testing.assert_array_equal(t.find(np.array([0.5, 1.5, 3.5, 9.9])), [0, 1, 2, 3])


def test_storage_and_batch_fields():
    r = _filled(4)
    batch, idx, w = r.sample(16)
    assert batch["rgb"].dtype == np.uint8 and batch["point_cloud"].dtype == np.float16
    assert np.isnan(batch["point_cloud"][:, 0, 0]).all()
    np.testing.assert_array_equal(batch["reward"], idx.astype(np.float32))
    np.testing.assert_array_equal(batch["low_dim"][:, 0], idx)
    assert batch["demo"].all() and w.shape == (16,)
    # the next decision's pixel travels with the transition (the critic's next crop is cut there)
    assert batch["next_pixel"].dtype == np.int64 and batch["next_pixel"].shape == (16, 2)
    np.testing.assert_array_equal(batch["next_pixel"], np.stack([np.ones_like(idx), idx % H], 1))
    # no time-limit cut unless the transition says so
    assert batch["timeout"].dtype == np.bool_ and not batch["timeout"].any()


def test_next_pixel_is_required_and_timeout_is_optional():
    r = PrioritizedReplay(capacity=4, seed=0, fields=FIELDS)
    missing = _transition(0)
    del missing["next_pixel"]
    with pytest.raises(KeyError, match="next_pixel"):
        r.add(missing)
    with pytest.raises(KeyError, match="next_pixel"):  # an object without the field, too
        r.add(SimpleNamespace(**missing))
    assert len(r) == 0  # nothing half-stored
    cut = r.add({**_transition(1), "terminal": True, "timeout": True})
    ended = r.add({**_transition(2), "terminal": True})
    batch, idx, _ = r.sample(32)
    assert set(idx.tolist()) == {cut, ended}
    np.testing.assert_array_equal(batch["timeout"], idx == cut)
    assert batch["terminal"].all()  # a cut episode still ends; only the target bootstraps


def test_ring_buffer_overwrites_oldest():
    r = PrioritizedReplay(capacity=3, seed=0)
    for i in range(5):
        r.add(_transition(i), demo=False)
    assert len(r) == 3
    batch, _, _ = r.sample(30)
    assert set(batch["reward"].tolist()) == {2.0, 3.0, 4.0}
    assert not batch["demo"].any()


def test_sampling_is_proportional_to_priority():
    r = _filled(4, alpha=1.0)
    r.update_priorities(np.arange(4), [1.0, 2.0, 3.0, 4.0])
    counts = np.zeros(4)
    for _ in range(500):
        _, idx, _ = r.sample(32)
        counts += np.bincount(idx, minlength=4)
    freq = counts / counts.sum()
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_alpha_flattens_priorities():
    r = _filled(2, alpha=0.5)
    r.update_priorities([0, 1], [1.0, 4.0])  # p^0.5: 1 vs 2
    counts = np.zeros(2)
    for _ in range(300):
        counts += np.bincount(r.sample(32)[1], minlength=2)
    assert counts[1] / counts.sum() == pytest.approx(2 / 3, abs=0.03)


def test_priority_update_changes_sampling_and_new_items_get_max():
    r = _filled(4, alpha=1.0)
    r.update_priorities([0, 1, 2, 3], [1e-3, 1e-3, 1e-3, 10.0])
    idx = np.concatenate([r.sample(32)[1] for _ in range(50)])
    assert np.mean(idx == 3) > 0.95
    r2 = PrioritizedReplay(capacity=8, alpha=1.0, seed=0)
    for i in range(4):
        r2.add(_transition(i))
    r2.update_priorities([0, 1, 2, 3], [1e-3, 1e-3, 1e-3, 10.0])
    r2.add(_transition(4))  # gets the max priority (10)
    idx = np.concatenate([r2.sample(32)[1] for _ in range(50)])
    assert 0.4 < np.mean(idx == 4) < 0.6


def test_importance_weights_in_unit_interval_and_beta_anneals():
    r = _filled(16, alpha=0.7, beta=0.5, beta_final=1.0, beta_steps=10)
    r.update_priorities(np.arange(16), np.linspace(0.1, 5, 16))
    assert r.beta == 0.5
    for _ in range(10):
        _, idx, w = r.sample(32)
        assert np.all(w > 0) and np.all(w <= 1) and w.max() == pytest.approx(1.0)
        # rarer items weigh more
        order = np.argsort(idx)
        assert np.all(np.diff(w[order]) <= 1e-6)
    assert r.beta == pytest.approx(1.0)


def test_from_config_and_errors():
    r = PrioritizedReplay.from_config(PRESETS["cpu"], seed=0)
    assert r.capacity == PRESETS["cpu"].replay_capacity and r.alpha == 0.7
    with pytest.raises(ValueError):
        r.sample(4)
    r.add(_transition(0))
    with pytest.raises(ValueError):
        r.update_priorities([0], [np.nan])


def test_demo_fraction_keeps_the_demos_in_every_batch_with_exact_weights():
    """10 demos among 990 agent transitions: half of every batch is still demos, and the importance
    weights are those of the mixture (demo items 50x more likely than their 1% share)."""
    r = PrioritizedReplay(capacity=1000, alpha=1.0, beta=1.0, seed=0, demo_fraction=0.5)
    for i in range(1000):
        r.add(_transition(i), demo=i < 10)
    batch, idx, w = r.sample(32)
    assert batch["demo"].sum() == 16 and np.all(idx[:16] < 10) and np.all(idx[16:] >= 10)
    # P(demo) = 0.5/10, P(agent) = 0.5/990 at equal priorities; w = (N P)^-1 / max.
    np.testing.assert_allclose(w[:16], (10 / 990), rtol=1e-5)
    np.testing.assert_allclose(w[16:], 1.0, rtol=1e-5)

    # Priorities still act within each kind: one agent item with all the agent mass.
    r.update_priorities(np.arange(10, 1000), np.full(990, 1e-9))
    r.update_priorities([500], [1.0])
    batch, idx, _ = r.sample(32)
    assert np.all(idx[16:] == 500) and np.all(idx[:16] < 10)


def test_demo_fraction_falls_back_to_one_buffer_while_a_kind_is_missing():
    r = PrioritizedReplay(capacity=8, seed=0, demo_fraction=0.5)
    for i in range(8):
        r.add(_transition(i), demo=True)
    batch, _, w = r.sample(6)
    assert batch["demo"].all() and np.all((w > 0) & (w <= 1))
    # The ring overwrites demo slots with agent items: they leave the demo part.
    for i in range(6):
        r.add(_transition(100 + i), demo=False)
    batch, idx, _ = r.sample(8)
    assert batch["demo"].sum() == 4 and set(idx[:4]) <= {6, 7} and set(idx[4:]) <= set(range(6))
    with pytest.raises(ValueError, match="demo_fraction"):
        PrioritizedReplay(capacity=8, demo_fraction=1.0)


def test_a_successful_episode_is_flagged_after_the_fact_and_stays_an_agent_transition():
    r = PrioritizedReplay(capacity=8, seed=0, demo_fraction=0.5)
    for i in range(2):
        r.add(_transition(i), demo=True)
    episode = [r.add(_transition(10 + i), demo=False) for i in range(3)]
    failed = [r.add(_transition(20 + i), demo=False) for i in range(3)]
    batch, idx, _ = r.sample(64)
    assert not batch["success"].any()  # outcome not known yet
    r.mark_success(episode)
    batch, idx, _ = r.sample(64)
    np.testing.assert_array_equal(batch["success"], np.isin(idx, episode))
    assert batch["success"].any() and not np.isin(idx, failed)[batch["success"]].any()
    assert not batch["demo"][batch["success"]].any() and batch["demo"].sum() == 32
    reused = [r.add(_transition(30 + i), demo=False) for i in range(3)]  # the ring wraps
    assert episode[0] in reused
    batch, idx, _ = r.sample(64)
    assert not batch["success"][idx == episode[0]].any()  # a reused slot starts unflagged


def test_an_agent_declares_what_its_transitions_hold():
    """Another agent (a pixel-free, closed-loop one) stores only its own fields, plus the
    replay's demo and success flags; a field it did not declare is not kept."""
    fields = {"image": ((4, 4, 3), np.uint8), "action": ((5,), np.float32), "reward": ((), np.float32)}
    r = PrioritizedReplay(capacity=4, seed=0, fields=fields)
    r.add({"image": np.ones((4, 4, 3), np.uint8), "action": np.arange(5.0), "reward": 0.5,
           "pixel": np.array([1, 2])}, demo=False)
    batch, _, _ = r.sample(2)
    assert set(batch) == {"image", "action", "reward", "demo", "success"}
    assert batch["image"].dtype == np.uint8 and batch["action"].shape == (2, 5)
    with pytest.raises(KeyError, match="action"):
        r.add({"image": np.ones((4, 4, 3), np.uint8), "reward": 1.0})
    with pytest.raises(ValueError, match="own flags"):
        PrioritizedReplay(capacity=4, fields={"demo": ((), np.bool_)})


def test_bookkeeping_and_rows_rebuild_the_same_buffer_after_the_ring_wrapped():
    """What a checkpoint keeps of the replay (bookkeeping) and what the replay files keep (the
    agent's rows by add index) make the same buffer again: slots, kinds, success flags,
    priorities and both kinds' trees, whichever items the ring overwrote."""
    def demos_only():
        r = PrioritizedReplay(capacity=6, alpha=0.7, seed=0, demo_fraction=0.5, fields=FIELDS)
        r.extend([_transition(i) for i in range(2)], demo=True)
        return r

    r = demos_only()
    agent = [r.add(_transition(10 + i), demo=False) for i in range(9)]  # 11 adds: the demos are gone
    r.mark_success(agent[-3:])
    _, idx, _ = r.sample(4)
    r.update_priorities(idx, [0.5, 2.0, 3.0, 0.1])
    book = r.bookkeeping()
    assert book["added"] == 11 and book["size"] == 6 and not book["demo"].any()
    add_index = np.arange(2, 11)  # every agent item, the overwritten ones too
    saved = r.rows(add_index % 6)

    again = demos_only()
    again.restore_bookkeeping(book)
    assert again.put_rows(add_index, saved) == 6  # the three overwritten ones are left out
    for k in r._store:
        np.testing.assert_array_equal(again._store[k], r._store[k], err_msg=k)
    for mine, theirs in ((again.tree, r.tree), *zip(again.kind_trees.values(), r.kind_trees.values())):
        np.testing.assert_allclose(mine.nodes, theirs.nodes)
    assert (again.max_priority, again.samples_drawn, again._next) == (r.max_priority, 1, r._next)
    assert again.add(_transition(99), demo=False) == r.add(_transition(99), demo=False)
    with pytest.raises(ValueError, match="never added"):
        again.put_rows(np.array([50]), r.rows([0]))
    with pytest.raises(KeyError, match="saved rows"):
        again.put_rows(np.array([3]), {"rgb": saved["rgb"][:1]})
