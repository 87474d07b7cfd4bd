"""QT-Opt's hyper-parameters (seed 001: Kalashnikov et al. 2018), with the CPU scaling stated.

``QTOptConfig()`` is the CPU default; ``QTOptConfig.paper()`` the paper's values where they
differ (target-network time constants). ARMConfig is not touched: QT-Opt keeps its own config,
saved in its checkpoints like ARM's (``to_dict``/``from_dict``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["QTOptConfig", "STATE_SIZE", "ACTION_SIZE"]

#: the low-dimensional state: [gripper_open (1 open, 0 closed), gripper_height (m)]
STATE_SIZE = 2
#: the action vector: [dx, dy, dz, sin(yaw), cos(yaw), close_gripper, terminate]
ACTION_SIZE = 7


@dataclass
class QTOptConfig:
    """QT-Opt: a Q(s, a) in [0, 1] learned by cross-entropy, maximised over actions by CEM."""

    # ---------------------------------------------------------------- observation and network
    #: square RGB size (paper: 472); must be a multiple of 2 ** (len(conv_channels) + 1)
    image_size: int = 64
    #: channels of the stride-2 image convolutions (the first 5x5, the rest 3x3): 64 -> 8x8
    conv_channels: tuple[int, ...] = (32, 32, 32)
    #: hidden width of the MLP embedding [state, action], added to every cell of the feature map
    embed_hidden: int = 64
    #: channels of the stride-2 convolution after the merge (8x8 -> 4x4), then an MLP
    head_channels: int = 32
    head_hidden: int = 64

    #: scale [state, action] to about unit range before the network (height / 0.25 m, dx dy dz /
    #: max_displacement): raw, a displacement is +-0.05 beside 0/1 flags and barely moves Q.
    #: On (with image_shift 4 and 1000 exploring scripted grasps) offline-only held-out success
    #: went from ~0.01 to ~0.05 (mean of evaluations; the three were measured together only)
    normalize_inputs: bool = True
    #: random shift of every training image (and next image) by up to this many pixels (0: none):
    #: the paper's random crops. Without it Q memorised each scripted episode's outcome from its
    #: scene (Q(s, a) = y on the training data, failed and successful starts of the same look
    #: at 0.10 vs 0.63) and did not carry over to held-out objects
    image_shift: int = 4

    #: the state's first value is the measured finger aperture (0 closed .. 1 open) instead of
    #: the binary gripper_open. Binary, a gripper closed on an object and one closed on nothing
    #: read the same (both 0), so Q cannot tell from the state whether terminating now pays
    #: (at 64x64 the fingers are a few pixels). Measured offline only, 1000 exploring scripted
    #: grasps, 15 min: held-out success 0.16 mean of the evaluations (best 0.36) with it, 0.05
    #: (best 0.12) without. Needs bags recorded with the aperture (grasp_episodes.frame_state)
    state_aperture: bool = True

    # ---------------------------------------------------------------- action
    #: bound of each Cartesian displacement dx, dy, dz per step (m): [-b, b]; the bin's own
    #: per-step bound (arm_sim.grasp_bin.MAX_DISPLACEMENT), so CEM searches what can be executed
    max_displacement: float = 0.05
    #: bound of the vertical rotation per step (rad): yaw in [-b, b], given to Q as sin, cos
    #: (the bin's MAX_YAW_DELTA, pi / 4)
    max_yaw: float = 0.7853981633974483

    # ---------------------------------------------------------------- episodes and rewards
    #: an episode has at most this many steps; the last one lifts and checks like ``terminate``,
    #: so it is a real end, not a timeout (the bin's MAX_STEPS)
    max_steps: int = 20
    gamma: float = 0.9
    #: reward of every step (the paper's -0.05: prefer fast grasps)
    step_reward: float = -0.05
    #: added to the step reward at a successful end (paper: 1, an object lifted)
    success_reward: float = 1.0

    # ---------------------------------------------------------------- learning
    #: Adam learning rate (paper: momentum SGD 1e-4 with decay, over millions of steps; Adam
    #: learns in the thousands of updates a CPU run makes)
    lr: float = 3e-4
    batch_size: int = 32
    #: gradient-norm clip (0: none)
    grad_clip: float = 10.0
    #: theta_1 <- polyak theta_1 + (1 - polyak) theta after every update. The paper's 0.9999 is
    #: a time constant of 1 / (1 - 0.9999) = 10,000 updates, in runs of millions of updates; over
    #: the 10^3-10^4 updates of a CPU run such an average would hardly leave the initial weights.
    #: We keep the paper's shape in units of the time constant T: T = 200 updates (0.995, the
    #: tau = 0.005 of the ARM preset) and the lag below 0.6 T, as the paper's 6,000 = 0.6 x 10,000.
    polyak: float = 0.995
    #: theta_2 = theta_1 as it was ``lag_updates`` updates ago (paper: 6,000 = 0.6 T; here 0.6 T)
    lag_updates: int = 120
    #: theta_1 is snapshotted every this many updates for the lag: 1 = exactly ``lag_updates``
    #: behind (``lag_updates`` copies of the network in memory); k > 1: between ``lag_updates``
    #: and ``lag_updates + k - 1`` behind, with about ``lag_updates / k`` copies
    lag_snapshot_every: int = 10

    #: weight of a conservative term (after CQL, Kumar et al. 2020; not in the paper, 0 = the
    #: paper's loss): alpha * the mean Q of ``conservative_samples`` uniformly random actions per
    #: state. Where the data tried an action its cross-entropy holds Q at the target; elsewhere Q
    #: decays towards 0, so CEM's argmax cannot exploit actions the data never tried (measured on
    #: the trivial tray: with the paper's loss even a Q fitted to the data's Monte-Carlo returns
    #: closed and terminated 8 cm or more above the box, where all 113 such ends of 300 scripted
    #: grasps failed).
    #: In probabilities, not logits: CQL's logit form (logsumexp of the random logits minus the
    #: data action's) pushes every data action's Q towards y + alpha, 1 at alpha 1. At 1, on the
    #: trivial tray (bench/bench_qtopt_tray.py, 200 grasps, 64 px, one seed): held-out success
    #: 0.19 mean of six evaluations against 0.09 at 0, within the noise, so 0 stays the default
    conservative_weight: float = 0.0
    conservative_samples: int = 16

    # ---------------------------------------------------------------- CEM (paper: 2, 64, 6)
    cem_iterations: int = 2
    cem_samples: int = 64
    cem_elites: int = 6

    # ---------------------------------------------------------------- exploration
    #: with ``explore``, a uniformly random action with this probability, else CEM's argmax
    epsilon: float = 0.2
    #: probability of ``terminate`` in a random action (0.5 would end most episodes at once)
    random_terminate_prob: float = 0.1

    # ---------------------------------------------------------------- offline data (train_qtopt)
    #: each step of a scripted offline grasp is replaced by a uniformly random action with this
    #: probability when the offline bags are recorded (arm_sim.grasp_bin_scripted). The plain
    #: scripted grasps close and terminate only at the bottom, so Q never sees what terminating
    #: anywhere else does and CEM's argmax exploits that (measured: offline-only, it closed and
    #: terminated 20 cm above the objects after 1-4 steps, Q ~0.8-0.9 there). Recorded into
    #: their own folder (DEMOS/grasp_bin_random<p>_terminate<q>), never mixed with plain ones.
    #: At 0.15 the data's own success falls from ~0.62 to ~0.30 (the paper's early data: 15-30%),
    #: and offline-only QT-Opt stops terminating at once: 1000 plain grasps (aperture, shifts,
    #: normalised inputs) stayed at 0.00 held-out with 1-step episodes, the same with 0.15
    #: random steps reached 0.16 mean of the evaluations (best 0.36) in 15 minutes
    scripted_random_action_prob: float = 0.15
    #: probability that such a random action terminates (a failing grasp wherever it is)
    scripted_random_terminate_prob: float = 0.5
    #: a random step's close holds through the scripted steps after it (until the next random
    #: step), so the data shows that descending closed fails; without it the next scripted step
    #: reopens and closing early looks free (measured: Q fitted to such data closed on the way
    #: down, 8-20 cm above the box). Its bags go to their own folder (``..._sticky``). Measured
    #: on the trivial tray (as ``conservative_weight``): 0.06 mean against 0.09 without, so off
    #: by default
    scripted_sticky_close: bool = False

    # ---------------------------------------------------------------- replay (PrioritizedReplay)
    replay_capacity: int = 100_000
    #: 0: uniform sampling as in the paper (priorities are still reported, as the TD error)
    replay_alpha: float = 0.0
    #: importance-weight exponent, start and end of its annealing. 0: no correction, as the paper
    #: (uniform sampling has no importance weights). Any beta > 0 also weighs the offline/online mix
    #: back to the replay's own proportions, (N P(i))^-beta: at beta 1 with 6,300 offline and 200
    #: online transitions, the online half of a batch gets ~1/30 of the offline half's weight, and
    #: the half-and-half mix below is undone
    replay_beta: float = 0.0
    replay_beta_final: float = 0.0
    replay_beta_steps: int = 40_000
    priority_eps: float = 1e-6
    #: share of a batch drawn from the offline data (the replay's ``demo`` flag) once the agent's
    #: own grasps are in the replay too; the paper mixed its offline grasps with on-policy data
    #: half and half once online collection ran (before that, every sample is offline)
    replay_demo_fraction: float = 0.5

    def __post_init__(self) -> None:
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        if not self.conv_channels:
            raise ValueError("conv_channels needs at least one convolution")
        factor = 2 ** (len(self.conv_channels) + 1)
        if self.image_size < factor or self.image_size % factor:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {factor} "
                             f"(one halving per convolution, one more after the merge)")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma {self.gamma} must be in (0, 1]")
        if not 0.0 <= self.polyak < 1.0:
            raise ValueError(f"polyak {self.polyak} must be in [0, 1)")
        if self.lag_updates < 0 or self.lag_snapshot_every < 1:
            raise ValueError("lag_updates must be >= 0 and lag_snapshot_every >= 1")
        if not 1 <= self.cem_elites <= self.cem_samples or self.cem_iterations < 1:
            raise ValueError("CEM needs iterations >= 1 and 1 <= elites <= samples")
        if not (0.0 <= self.epsilon <= 1.0 and 0.0 <= self.random_terminate_prob <= 1.0):
            raise ValueError("epsilon and random_terminate_prob must be in [0, 1]")
        if not (0.0 <= self.scripted_random_action_prob <= 1.0 and 0.0 <= self.scripted_random_terminate_prob <= 1.0):
            raise ValueError("scripted_random_action_prob and scripted_random_terminate_prob must be in [0, 1]")
        if self.conservative_weight < 0 or self.conservative_samples < 1:
            raise ValueError("conservative_weight must be >= 0 and conservative_samples >= 1")
        if self.max_displacement <= 0 or not 0 <= self.max_yaw <= math.pi:
            raise ValueError("max_displacement must be > 0 and max_yaw in [0, pi]")
        if self.max_steps < 1 or self.batch_size < 1 or self.replay_capacity < 1:
            raise ValueError("max_steps, batch_size and replay_capacity must be >= 1")

    @property
    def polyak_time_constant(self) -> float:
        """Updates over which theta_1 forgets (1 / (1 - polyak)); paper: 10,000."""
        return math.inf if self.polyak == 1.0 else 1.0 / (1.0 - self.polyak)

    @classmethod
    def paper(cls, **overrides) -> "QTOptConfig":
        """The paper's target networks (0.9999, lag 6,000) for long runs; the rest as default."""
        return cls(**{"polyak": 0.9999, "lag_updates": 6000, "lag_snapshot_every": 100, **overrides})

    def replace(self, **changes) -> "QTOptConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), for checkpoints."""
        d = dataclasses.asdict(self)
        d["conv_channels"] = list(d["conv_channels"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QTOptConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise (a checkpoint from another version). A
        field a saved config lacks takes the value it had before the field existed
        (``LEGACY_VALUES``), not today's default: an older checkpoint's network stays the same."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown QTOptConfig fields: {sorted(unknown)}")
        return cls(**{**LEGACY_VALUES, **d})


#: what the fields added after the first QT-Opt checkpoints meant before they existed
LEGACY_VALUES: dict[str, Any] = {"normalize_inputs": False, "image_shift": 0, "state_aperture": False,
                                 "scripted_random_action_prob": 0.0, "scripted_random_terminate_prob": 0.5}
