"""Proportional prioritised replay (Schaul et al. 2016) for ARM transitions, on a sum tree.

P(i) = p_i^alpha / sum_k p_k^alpha; importance weights w_i = (N P(i))^-beta / max_batch w, so in
(0, 1]; beta is annealed linearly from ``beta`` to ``beta_final`` over ``beta_steps`` sample
calls; new items get the largest priority seen so far. Demo and agent transitions share one
buffer (a ``demo`` flag is kept); with ``demo_fraction`` f > 0 a batch takes round(f B) items
from the demos and the rest from the agent's transitions, each part prioritised within its own
kind, and P(i) is that mixture's probability, so the importance weights stay exact. A ``success``
flag marks the agent's transitions from episodes that ended in success (``mark_success`` once the
episode is over): ``ARMConfig.imitate_successes`` imitates them like demos, while they are still
sampled as agent transitions.

What a transition holds is the agent's to say (``Agent.replay_fields()``: name -> (shape, dtype));
ARM's stores RGB as uint8 and point clouds as float16 (NaN kept: no depth). Without a declaration
the first transition (a dict) sets the fields, shapes and dtypes (floats as float32). The replay
adds its own ``demo`` and ``success`` flags. Memory is allocated on the first ``add``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .config import ARMConfig

__all__ = ["Fields", "PrioritizedReplay", "SumTree"]

#: what an agent stores per transition: field name -> (shape, numpy dtype)
Fields = Mapping[str, tuple[tuple[int, ...], Any]]
#: the replay's own flags, beside the agent's fields
_FLAGS = ("demo", "success")


class SumTree:
    """Binary sum tree over ``capacity`` leaves (array layout: node i has children 2i, 2i+1)."""

    def __init__(self, capacity: int):
        self.size = 1 << max(0, int(capacity - 1).bit_length())
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def get(self, idx) -> np.ndarray:
        return self.nodes[self.size + np.asarray(idx)]

    def set(self, idx, values) -> None:
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64)) + self.size
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), idx.shape)
        self.nodes[idx] = values
        parents = np.unique(idx // 2)
        while parents[0] >= 1:
            self.nodes[parents] = self.nodes[2 * parents] + self.nodes[2 * parents + 1]
            if parents[0] == 1:
                break
            parents = np.unique(parents // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index where the prefix sum passes each value of ``mass`` (vectorised descent)."""
        node = np.ones(len(mass), dtype=np.int64)
        mass = np.array(mass, dtype=np.float64)
        while node[0] < self.size:
            left = 2 * node
            go_right = mass >= self.nodes[left]
            mass = np.where(go_right, mass - self.nodes[left], mass)
            node = np.where(go_right, left + 1, left)
        return node - self.size


class PrioritizedReplay:
    """Ring buffer of transitions with proportional prioritised sampling."""

    def __init__(self, capacity: int, alpha: float = 0.7, beta: float = 0.5,
                 beta_final: float = 1.0, beta_steps: int = 40_000, eps: float = 1e-6,
                 seed: int | None = None, demo_fraction: float = 0.0, fields: Fields | None = None):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if not 0 <= demo_fraction < 1:
            raise ValueError(f"demo_fraction {demo_fraction} must be in [0, 1)")
        self.demo_fraction = float(demo_fraction)
        self.capacity, self.alpha, self.eps = int(capacity), float(alpha), float(eps)
        self.beta0, self.beta_final, self.beta_steps = float(beta), float(beta_final), int(beta_steps)
        self.tree = SumTree(self.capacity)  # every item
        self.kind_trees = {True: SumTree(self.capacity), False: SumTree(self.capacity)}  # demo / agent
        self.rng = np.random.default_rng(seed)
        self.max_priority = 1.0
        self.samples_drawn = 0  # sample() calls, for beta annealing
        self._next = 0
        self._size = 0
        self.added = 0  # every add() ever: item k went to slot k % capacity
        self._store: dict[str, np.ndarray] | None = None
        self.fields = dict(fields) if fields is not None else None
        if self.fields is not None and set(self.fields) & set(_FLAGS):
            raise ValueError(f"{sorted(set(self.fields) & set(_FLAGS))}: the replay's own flags")

    @classmethod
    def from_config(cls, cfg: ARMConfig, seed: int | None = None,
                    fields: Fields | None = None) -> "PrioritizedReplay":
        return cls(cfg.replay_capacity, cfg.replay_alpha, cfg.replay_beta, cfg.replay_beta_final,
                   cfg.replay_beta_steps, cfg.priority_eps, seed, cfg.replay_demo_fraction, fields)

    def __len__(self) -> int:
        return self._size

    @property
    def beta(self) -> float:
        frac = min(1.0, self.samples_drawn / max(1, self.beta_steps))
        return self.beta0 + frac * (self.beta_final - self.beta0)

    def _allocate(self, t: dict[str, Any]) -> None:
        if self.fields is None:  # undeclared: as the first transition has them
            self.fields = {}
            for k, v in t.items():
                if k not in _FLAGS:
                    v = np.asarray(v)
                    self.fields[k] = (v.shape, np.float32 if v.dtype.kind == "f" else v.dtype)
        n = self.capacity
        self._store = {k: np.empty((n, *shape), dtype) for k, (shape, dtype) in self.fields.items()}
        self._store.update({flag: np.zeros((n,), np.bool_) for flag in _FLAGS})

    def add(self, transition: Any, demo: bool | None = None, priority: float | None = None,
            success: bool = False) -> int:
        """Store a transition (a dict, or an object such as ``demo_dataset.Transition`` with the
        declared fields as attributes) -> its slot.

        ``demo`` defaults to True for a Transition-like object without a ``demo`` field;
        ``success``: it belongs to an agent episode that succeeded (see ``mark_success``).
        New items get the maximum priority so far unless ``priority`` is given.
        """
        if isinstance(transition, dict):
            t = dict(transition)
        elif self.fields is None:
            raise TypeError(f"a {type(transition).__name__} can only go into a replay whose fields "
                            "are declared (fields=agent.replay_fields()); undeclared, pass a dict")
        else:
            t = {k: getattr(transition, k) for k in self.fields if hasattr(transition, k)}
        if "timeout" in (self.fields or {"timeout": None}):
            t.setdefault("timeout", False)
        missing = sorted(set(self.fields or {}) - set(t))
        if missing:
            raise KeyError(f"the transition lacks the declared field(s) {missing}"
                           + (" (next_pixel: the pixel of the decision taken at its next "
                              "observation, where the critic's next crop is cut)"
                              if "next_pixel" in missing else ""))
        t["demo"] = bool(t.get("demo", True) if demo is None else demo)
        t["success"] = bool(success)
        if self._store is None:
            self._allocate(t)
        i = self._next
        for k, arr in self._store.items():
            arr[i] = t[k]
        p = self.max_priority if priority is None else max(float(priority), self.eps)
        self.max_priority = max(self.max_priority, p)
        self._set_priority(np.array([i]), np.array([p ** self.alpha]))
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.added += 1
        return i

    def extend(self, transitions, demo: bool | None = None, success: bool = False) -> None:
        for t in transitions:
            self.add(t, demo=demo, success=success)

    def mark_success(self, indices) -> None:
        """Flag slots (``add``'s return values) as parts of an episode that ended in success:
        known only once it is over, after its transitions were already being learned from."""
        self._store["success"][np.asarray(indices, dtype=np.int64)] = True

    def sample(self, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Stratified proportional sample -> (batch dict of numpy arrays, indices, weights).

        Weights are (N P(i))^-beta normalised by the batch maximum: in (0, 1].
        """
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay")
        demo_mass, agent_mass = self.kind_trees[True].total, self.kind_trees[False].total
        n_demo = int(round(self.demo_fraction * batch_size))
        if self.demo_fraction == 0 or demo_mass <= 0 or agent_mass <= 0 or n_demo in (0, batch_size):
            idx, probs = self._sample_tree(self.tree, batch_size)
        else:
            d_idx, d_probs = self._sample_tree(self.kind_trees[True], n_demo)
            a_idx, a_probs = self._sample_tree(self.kind_trees[False], batch_size - n_demo)
            idx = np.concatenate([d_idx, a_idx])
            share = n_demo / batch_size
            probs = np.concatenate([share * d_probs, (1 - share) * a_probs])
        weights = (self._size * probs) ** (-self.beta)
        weights = (weights / weights.max()).astype(np.float32)
        self.samples_drawn += 1
        batch = {k: arr[idx] for k, arr in self._store.items()}
        return batch, idx, weights

    def _sample_tree(self, tree: SumTree, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n stratified draws from ``tree`` -> (indices, their probabilities within the tree)."""
        total = tree.total
        edges = np.linspace(0.0, total, n + 1)
        mass = self.rng.uniform(edges[:-1], edges[1:])
        idx = np.minimum(tree.find(np.minimum(mass, np.nextafter(total, 0))), self._size - 1)
        pri = tree.get(idx)
        bad = pri <= 0  # float round-off landing on an empty leaf: redraw among the tree's items
        if bad.any():
            live = np.flatnonzero(tree.get(np.arange(self._size)) > 0)
            idx[bad] = self.rng.choice(live, bad.sum())
            pri = tree.get(idx)
        return idx, pri / total

    def _set_priority(self, idx: np.ndarray, stored: np.ndarray) -> None:
        """Stored priorities (already ^alpha) of slots ``idx``, in the shared and kind trees."""
        self.tree.set(idx, stored)
        demo = self._store["demo"][idx]
        for kind in (True, False):
            mine = demo == kind
            if mine.any():
                self.kind_trees[kind].set(idx[mine], stored[mine])
            if (~mine).any():  # a ring slot that changed kind is emptied in the other tree
                self.kind_trees[kind].set(idx[~mine], 0.0)

    def update_priorities(self, indices, priorities) -> None:
        """Set priorities (e.g. |TD error|) of sampled items; stored as (p + eps)^alpha."""
        p = np.abs(np.asarray(priorities, dtype=np.float64)) + self.eps
        if not np.all(np.isfinite(p)):
            raise ValueError("non-finite priority")
        self.max_priority = max(self.max_priority, float(p.max()))
        self._set_priority(np.asarray(indices, dtype=np.int64), p ** self.alpha)

    # ------------------------------------------------------------------ saving and restoring
    def rows(self, slots) -> dict[str, np.ndarray]:
        """Copies of the declared fields of ``slots`` (not the replay's flags): what
        :meth:`put_rows` writes back."""
        slots = np.asarray(slots, dtype=np.int64)
        return {k: self._store[k][slots] for k in self.fields}

    def bookkeeping(self) -> dict[str, Any]:
        """Everything but the transitions themselves: the ring's position, each item's kind,
        success flag and stored priority, the largest priority and the sample count. With the
        transitions put back where they were, :meth:`restore_bookkeeping` then :meth:`put_rows`
        make the same buffer again."""
        n = self._size
        empty = np.zeros((0,), np.bool_)
        return {"added": self.added, "size": n, "max_priority": self.max_priority,
                "samples_drawn": self.samples_drawn, "priorities": self.tree.get(np.arange(n)),
                "demo": empty if self._store is None else self._store["demo"][:n].copy(),
                "success": empty if self._store is None else self._store["success"][:n].copy()}

    def put_rows(self, add_index, rows: Mapping[str, np.ndarray]) -> int:
        """Write transitions back into the slots they had: item ``add_index[j]`` (its place in
        the order of ``add``) into slot ``add_index[j] % capacity``. Items older than the newest
        ``capacity`` were overwritten since and are left out -> how many were written. Their
        flags and priorities come from :meth:`restore_bookkeeping`, called first."""
        if self.fields is None:
            raise ValueError("put_rows needs a replay with declared fields")
        add_index = np.asarray(add_index, dtype=np.int64)
        if set(rows) != set(self.fields):
            raise KeyError(f"saved rows hold {sorted(rows)}, this replay {sorted(self.fields)}")
        if self._store is None:
            self._allocate({})
        if add_index.size and add_index.max() >= self.added:
            raise ValueError(f"item {add_index.max()} was never added ({self.added} adds)")
        live = add_index >= self.added - self.capacity
        slots = add_index[live] % self.capacity
        for k, arr in self._store.items():
            if k in rows:
                arr[slots] = rows[k][live]
        return int(live.sum())

    def restore_bookkeeping(self, state: Mapping[str, Any]) -> None:
        """The counters, kinds, success flags and priorities :meth:`bookkeeping` saved; the
        transitions themselves follow with :meth:`put_rows`."""
        if self.fields is None:
            raise ValueError("restore_bookkeeping needs a replay with declared fields")
        n, added = int(state["size"]), int(state["added"])
        if n != min(added, self.capacity) or len(state["priorities"]) != n:
            raise ValueError(f"replay bookkeeping of {n} items after {added} adds does not fit a "
                             f"buffer of capacity {self.capacity}")
        if self._store is None:
            self._allocate({})
        self.added, self._size, self._next = added, n, added % self.capacity
        self._store["demo"][:n] = np.asarray(state["demo"], np.bool_)
        self._store["success"][:n] = np.asarray(state["success"], np.bool_)
        self.tree = SumTree(self.capacity)
        self.kind_trees = {True: SumTree(self.capacity), False: SumTree(self.capacity)}
        if n:
            self._set_priority(np.arange(n), np.asarray(state["priorities"], np.float64))
        self.max_priority = float(state["max_priority"])
        self.samples_drawn = int(state["samples_drawn"])
