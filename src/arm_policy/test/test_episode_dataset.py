"""Agent-episode bags (real MCAP, written as the recorder writes them) -> ARM transitions."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from arm_perception.bag_format import BagError, BagWarning
from arm_perception.bag_writer import write_episode
from arm_policy.demo_dataset import LOW_DIM_SIZE
from arm_policy.episode_dataset import (AGENT_TOPIC_TYPES, decision_message,
                                        iter_agent_episodes, list_bags, load_agent_episodes,
                                        parse_decision, read_agent_episode, write_agent_episode,
                                        write_rollout_episode)
from arm_policy.rewards import FAILURE_REWARD, step_reward

SIZE = 8
T0 = 1_800_000_000 * 10**9


def decisions(n: int, seed: int = 0, success: bool = True) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        last = k == n - 1
        points = rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32)
        points[0, 0] = np.nan  # no depth at one pixel: kept as NaN
        out.append(dict(
            stamp_ns=T0 + k * 700_000_000, step=k,
            rgb=rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), point_cloud=points,
            low_dim=np.r_[1.0, rng.normal(size=LOW_DIM_SIZE - 2), 1 - 2 * k / 9].astype(np.float32),
            pixel=[k, SIZE - 1 - k], action=np.r_[0.1 * k, 0.2, 0.9, 0.0, 0.0, 0.0, 1.0, k % 2],
            outcome="reached" if success or not last else "unreachable", success=success and last))
        # the reward and end as the episode runner records them (arm_policy.rewards)
        reward, terminal, _ = step_reward(out[-1]["outcome"], out[-1]["success"], k, episode_length=10)
        assert terminal == last
        out[-1].update(reward=reward, terminal=terminal)
    return out


def test_transitions_chain_each_decision_to_the_next_observation(tmp_path):
    ds = decisions(4)
    bag = write_agent_episode(tmp_path / "train" / "episode_000001", ds)
    trs = read_agent_episode(bag)

    assert len(trs) == 4
    assert [(t.index, t.next_index) for t in trs] == [(0, 1), (1, 2), (2, 3), (3, 3)]
    assert [t.reward for t in trs] == [0.0, 0.0, 0.0, 1.0]
    assert [t.terminal for t in trs] == [False, False, False, True]
    for k, t in enumerate(trs):
        np.testing.assert_array_equal(t.rgb, ds[k]["rgb"])
        np.testing.assert_array_equal(t.point_cloud, ds[k]["point_cloud"])  # NaN where no depth
        np.testing.assert_array_equal(t.low_dim, ds[k]["low_dim"])
        assert t.pixel.tolist() == ds[k]["pixel"] and t.pixel.dtype == np.int64
        np.testing.assert_allclose(t.action, ds[k]["action"], atol=1e-7)
        nxt = ds[min(k + 1, 3)]  # the terminal one bootstraps from nothing: its own observation
        np.testing.assert_array_equal(t.next_rgb, nxt["rgb"])
        np.testing.assert_array_equal(t.next_point_cloud, nxt["point_cloud"])
        np.testing.assert_array_equal(t.next_low_dim, nxt["low_dim"])
        # the critic's next crop is cut where the next decision attended (the terminal one: its own)
        assert t.next_pixel.tolist() == nxt["pixel"] and t.next_pixel.dtype == np.int64
        assert t.episode == str(bag) and not t.augmented and not t.timeout
    assert [t.next_pixel.tolist() for t in trs] == [[1, 6], [2, 5], [3, 4], [3, 4]]
    # low_dim matched by order when the decisions do not carry it: the same transitions
    by_order = read_agent_episode(write_agent_episode(tmp_path / "by_order", ds,
                                                      low_dim_in_decision=False))
    for a, b in zip(trs, by_order):
        np.testing.assert_array_equal(a.low_dim, b.low_dim)
        np.testing.assert_array_equal(a.next_low_dim, b.next_low_dim)


def test_an_episode_cut_mid_step_and_an_unreachable_end(tmp_path):
    ds = decisions(3)
    ds[-1]["with_step"] = False  # the runner was stopped while the last pose executed
    trs = read_agent_episode(write_agent_episode(tmp_path / "cut", ds))
    assert [(t.index, t.next_index, t.terminal) for t in trs] == [(0, 1, False), (1, 2, False)]
    np.testing.assert_array_equal(trs[1].next_rgb, ds[2]["rgb"])
    assert trs[1].next_pixel.tolist() == ds[2]["pixel"]  # the cut decision still names its pixel

    # an unexecutable pose ends the episode with the failure reward: 0 (the authors'), not -1
    assert FAILURE_REWARD == 0.0
    assert step_reward("unreachable", False, 3, episode_length=10) == (0.0, True, False)
    assert step_reward("timeout", True, 0, episode_length=10) == (0.0, True, False)  # not executed
    assert step_reward("reached", True, 0, episode_length=10) == (1.0, True, False)
    assert step_reward("reached", False, 9, episode_length=10) == (0.0, True, True)  # cut: bootstraps
    assert step_reward("reached", False, 8, episode_length=10) == (0.0, False, False)
    failed = read_agent_episode(write_agent_episode(tmp_path / "failed", decisions(2, success=False)))
    assert [(t.reward, t.terminal, t.timeout) for t in failed] == [(0.0, False, False),
                                                                  (0.0, True, False)]


def test_unreadable_bags_are_skipped_with_a_warning_naming_them(tmp_path):
    root = tmp_path / "bags" / "train"
    write_agent_episode(root / "episode_000001", decisions(3, seed=1))
    bad = write_agent_episode(root / "episode_000002", decisions(3, seed=2))
    mcap = bad / "episode_000002.mcap"
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    write_agent_episode(root / "episode_000003", decisions(2, seed=3))
    shutil.copytree(root / "episode_000003", root / "episode_000004.partial")  # being written
    write_agent_episode(root / "eval" / "episode_000005", decisions(2, seed=5))  # not training data
    nan_reward = decisions(2, seed=6)
    nan_reward[1]["reward"] = float("nan")
    write_agent_episode(root / "episode_000006", nan_reward)

    assert [p.name for p in list_bags(root)] == ["episode_000001", "episode_000002",
                                                 "episode_000003", "episode_000006"]
    assert list_bags(tmp_path / "missing") == []
    with pytest.warns(BagWarning) as record:
        got = list(iter_agent_episodes(root))
    assert [p.name for p, _ in got] == ["episode_000001", "episode_000003"]
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert any("episode_000002" in m and "episode_000002.mcap" in m for m in messages)
    assert any("episode_000006" in m and "not finite" in m for m in messages)
    with pytest.warns(BagWarning):
        assert len(load_agent_episodes(root)) == 3 + 2
    with pytest.raises(BagError, match="episode_000002"):
        read_agent_episode(bad)


def test_a_demo_bag_is_not_an_agent_episode(tmp_path):
    from arm_sim.environment import Environment

    task = Environment(image_size=(16, 16)).get_task("reach_target")
    try:
        frames, _ = task.run_expert(0)
    finally:
        task.close()
    demo = write_episode(tmp_path / "seed_000000",
                         [(obs.misc["stamp"], obs, r, s) for obs, r, s in frames[:3]])
    with pytest.raises(BagError, match="not an agent episode") as err:
        read_agent_episode(demo)
    assert err.value.path == demo and err.value.topic in AGENT_TOPIC_TYPES


def test_decision_json_round_trip_and_bad_input():
    d = decision_message(stamp_ns=5, step=1, explore=True, pixel=np.array([3, 4]),
                         action=np.arange(8, dtype=np.float32), checkpoint_step=100,
                         low_dim=np.zeros(LOW_DIM_SIZE), observation_stamp_ns=4)
    text = json.dumps(d)
    assert json.loads(text)["pixel"] == [3, 4] and json.loads(text)["checkpoint_step"] == 100
    back = parse_decision(text)
    assert back["pixel"].tolist() == [3, 4] and back["action"].dtype == np.float32
    for broken, why in ((dict(d, action=[1.0] * 7), "action has 7 values"),
                        (dict(d, action=[float("nan")] * 8), "not finite"),
                        (dict(d, pixel=[1, 2, 3]), "pixel must be"),
                        ({k: v for k, v in d.items() if k != "stamp_ns"}, "stamp_ns")):
        with pytest.raises(ValueError, match=why):
            parse_decision(json.dumps(broken))


def rollout_transitions(outcomes: list[tuple[str, bool]], episode_length: int, seed: int = 0) -> list[dict]:
    """An in-process episode's transitions as arm_policy.rollout.run_episode hands them out."""
    rng = np.random.default_rng(seed)
    obs = [{"rgb": rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
            "point_cloud": rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32),
            "low_dim": rng.normal(size=LOW_DIM_SIZE).astype(np.float32), "pixel": np.array([k, 2 * k])}
           for k in range(len(outcomes) + 1)]
    out = []
    for k, (outcome, success) in enumerate(outcomes):
        reward, terminal, timeout = step_reward(outcome, success, k, episode_length)
        o, n = obs[k], obs[k + 1]
        out.append({"rgb": o["rgb"], "point_cloud": o["point_cloud"], "low_dim": o["low_dim"], "pixel": o["pixel"],
                    "action": np.r_[0.1 * k, 0.2, 0.9, 0.0, 0.0, 0.0, 1.0, 1.0].astype(np.float32),
                    "reward": reward, "terminal": terminal, "timeout": timeout, "next_rgb": n["rgb"],
                    "next_point_cloud": n["point_cloud"], "next_low_dim": n["low_dim"],
                    "next_pixel": n["pixel"] if not terminal or timeout else o["pixel"]})
    return out


@pytest.mark.parametrize("outcomes", [[("reached", False), ("reached", True)],  # a success ends it
                                      [("reached", False), ("unreachable", False)],  # so does a failed pose
                                      [("reached", False)] * 3])  # cut by the step limit: bootstrapped
def test_an_in_process_episode_reads_back_as_the_transitions_it_trained_on(tmp_path, outcomes):
    original = rollout_transitions(outcomes, episode_length=3)
    back = read_agent_episode(write_rollout_episode(tmp_path / "episode_000000", original))
    assert len(back) == len(original)
    for t, b in zip(original, back):
        bootstrap = 1 - t["terminal"] * (1 - t["timeout"])
        assert (1 - b.terminal * (1 - b.timeout)) == bootstrap and b.reward == t["reward"]
        for key in ("rgb", "low_dim", "pixel", "action") + (("next_rgb", "next_low_dim", "next_pixel") if bootstrap else ()):
            np.testing.assert_allclose(getattr(b, key), t[key], err_msg=key)
        np.testing.assert_allclose(b.point_cloud, t["point_cloud"], rtol=1e-6)
