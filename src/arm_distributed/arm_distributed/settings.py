"""What `arm train --distributed` takes beside the in-process trainer's settings (TrainSettings):
one dataclass, the one source of its command-line options (arm_policy.settings_cli). No Ray or
torch import here, so `arm --help` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DistributedSettings"]


@dataclass
class DistributedSettings:
    """The Ray side of a distributed run; saved in config.json beside the training settings."""

    collectors: int = 2  # actors that play episodes (each an in-process simulator plus the current policy)
    bellman_updaters: int = 1  # actors that label batches with Bellman targets (0: the learner computes them)
    address: str = ""  # Ray cluster to join: auto (the one `ray start` runs here) or HOST:PORT; empty: start a local one
    weights_every: int = 20  # learner updates between the weights it puts in the object store for collectors and updaters
    batches_in_flight: int = 4  # batches sampled ahead of the learner (labelled meanwhile)
    dashboard: bool = False  # a local Ray's dashboard, on 127.0.0.1 only (its URL is printed)
    ray_cpus: int = 0  # logical CPUs of a local Ray (0: enough for every actor; they share the real cores)
    worker_niceness: int = 15  # a local Ray's actor processes' nice value (Ray's default 15: they yield to every other process; 0: equal footing)

    def __post_init__(self) -> None:
        for name, low in (("collectors", 0), ("bellman_updaters", 0), ("weights_every", 1),
                          ("batches_in_flight", 1), ("ray_cpus", 0), ("worker_niceness", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.worker_niceness > 19:
            raise ValueError(f"worker_niceness must be 0..19, got {self.worker_niceness}")

    @property
    def actor_cpus(self) -> int:
        """Logical CPUs the actors ask for: one per collector, updater and the learner."""
        return self.collectors + self.bellman_updaters + 1
