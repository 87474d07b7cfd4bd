"""ARM agent configuration: one dataclass, two named presets (``PRESETS["paper"]``, ``PRESETS["cpu"]``).

Sources for the "paper" values: the ARM paper (James & Davison 2021: 128x128 front camera,
16x16 crops, batch 128, 1e5 prioritised replay, reward scale 100, 100 demos, LeakyReLU, layer
norm in the pose agent's convolutions) and the authors' public code, which the ``paper`` preset
follows where the two differ (stepjam/ARM ``conf/method/ARM.yaml`` and ``arm/arm/*.py``:
learning rates 5e-4 / 2.5e-3 / 1e-3 for Q-attention / critic / actor, alpha fixed at 0.05,
gradients clipped by value at 5, Huber losses, Q-regularisation lambda 1e-7 on 0.5 * sum of
squared per-pixel Q over the batch, replay alpha 0.7 / beta 0.5, confidence weight w = 1, target
entropy -8, log-std in [-40, 4], weight decay 1e-5, U-Net stem 8 filters 5x5 then [16, 16] 5x5
stride 2, pose-agent stems 32 per modality, actor 64 channels, critic 4 x 128 channels,
Q-attention target from rewards >= 0 clamped to [0, 100]). The paper text gives tau = "5^-4"
(a typo; 5e-4) while the authors' code and our DESIGN.md use 0.005, which we keep.

Where the ``paper`` preset still departs from the authors' code: ``PAPER_DEPARTURES``.

Every ``cpu`` difference is listed (with the reason) next to ``CPU_DIFFERENCES``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["AMP_CHOICES", "ARMConfig", "CPU_DIFFERENCES", "PAPER_DEPARTURES", "PRESETS", "preset",
           "without_attention"]

#: values of ``ARMConfig.amp`` (and ``arm train --amp``)
AMP_CHOICES = ("off", "bf16", "auto")


@dataclass
class ARMConfig:
    """Hyper-parameters of the ARM agent (Q-attention + next-best-pose SAC) and its replay."""

    # ---------------------------------------------------------------- observation
    #: camera resolution (square) the agent is built for; the U-Net is fully convolutional, so
    #: this is a check (``act``/``update`` refuse other sizes), must be a multiple of 4.
    image_size: int = 128
    #: side of the square crop around the Q-attention pixel fed to the pose agent (paper: 16).
    crop_size: int = 16
    #: low-dim state length (``demo_dataset.LOW_DIM_SIZE``).
    low_dim_size: int = 11
    #: tile the low-dim state over the Q-attention input. The authors' ARM code does not
    #: (``include_low_dim_state=False``, the ``paper`` preset); ``cpu`` does, so the time feature /
    #: gripper state can tell the stages of a multi-step task apart when the image alone does not.
    attention_low_dim: bool = False
    #: with ``attention_low_dim``: True tiles all of it, the gripper's pose included; False only
    #: the stage features (gripper open, finger positions, time: ``demo_dataset.STAGE_FEATURES``).
    attention_low_dim_pose: bool = True

    # ---------------------------------------------------------------- RL
    gamma: float = 0.99
    #: Polyak factor of both target networks (Q-attention and critics).
    tau: float = 0.005
    #: > 0: greedy decisions (evaluation, the policy node) take their pose from a Polyak average
    #: of the actor, moved by this fraction after each update (0.01: about the last 100 updates);
    #: exploration still samples around the actor itself. 0 (authors): the actor itself.
    actor_average_tau: float = 0.0
    #: > 1: a greedy decision weighs this many poses, the actor's mean and the others moved from
    #: it across xyz by a fixed Gaussian set of offsets (``greedy_refine_cm`` each axis; the same
    #: set at every decision, so an evaluation repeats), and takes the one the critic values most
    #: (the lower twin at its most confident pixel): QT-Opt's argmax over Q, searched near the
    #: actor. SAC's actor maximises Q averaged over its own spread, which can sit centimetres from
    #: Q's peak. 0 (authors): the actor's mean. Decision time only; ``arm evaluate
    #: --greedy-refine K`` tries it on a trained run's checkpoints.
    greedy_refine_samples: int = 0
    greedy_refine_cm: float = 1.0
    #: sparse rewards are multiplied by this inside the agent (paper: 100).
    reward_scale: float = 100.0
    #: the Q-attention's Bellman target is built from the rewards >= 0 only and clamped to
    #: [0, q_clamp] (authors: 100); the critic's target is not clamped (authors).
    q_clamp: float = 100.0

    # ---------------------------------------------------------------- Q-attention
    #: U-Net stem (per modality: RGB and point cloud), "siamese" in the authors' code.
    unet_stem: int = 8
    unet_stem_kernel: int = 5
    #: > 1: the stem convolves the image with this stride, the U-Net works at image_size /
    #: stride, and its Q map is upsampled (bilinear) back to the image's pixels, so the attended
    #: pixel, the crops and the anchors keep the full image's resolution for about the U-Net's
    #: cost at the lower one (the coarse level of C2F-ARM, in one network). Bilinear upsampling
    #: lets the map prefer either half of a coarse cell through its neighbours' values.
    #: 1 (authors): the U-Net at the image's resolution.
    attention_stride: int = 1
    #: encoder filters, each a stride-2 conv; the decoder mirrors them with skip connections.
    unet_filters: tuple[int, ...] = (16, 16)
    unet_kernel: int = 5
    #: Q regularisation: lambda * 0.5 * sum of Q^2 over pixels, both heads and the whole batch
    #: (authors: 1e-7, not importance-weighted).
    q_reg_weight: float = 1e-7
    attention_lr: float = 5e-4
    #: weight of the demo loss of Q-attention (0: the paper's ARM). On demo transitions the demo
    #: pixel must beat every other pixel: logsumexp over pixels of Q minus Q at the demo pixel
    #: (a soft form of DQfD's large-margin loss; CQL's regulariser restricted to demos).
    demo_attention_weight: float = 0.0
    #: False: the paper's SAC baseline: no Q-attention, the pose agent sees the whole image
    #: (``crop_size`` must then equal ``image_size``; see :func:`without_attention`).
    q_attention: bool = True

    # ---------------------------------------------------------------- next-best-pose agent
    #: channels of the per-modality conv stem on the crop (RGB and point cloud each).
    pose_stem: int = 32
    actor_channels: int = 64
    actor_hidden: int = 64
    critic_channels: int = 128
    critic_layers: int = 4
    #: confidence regulariser weight w in bellman^2 * c - w * log c (authors: 1.0).
    confidence_weight: float = 1.0
    #: predict xyz as an offset from the 3-D point at the crop centre instead of anywhere inside
    #: the action bounds (the paper's form).
    actor_relative_xyz: bool = False
    #: the offset's least reach in metres per axis; ``ARMAgent.from_demos`` widens each axis to
    #: cover every demo action (``demo_dataset.relative_xyz_range``).
    relative_xyz_range: float = 0.1
    #: the axes of the relative offset. "world": x, y, z. "camera_ray": two axes across the
    #: camera's ray through the anchor and one along it. A keyframe in free space projects onto a
    #: pixel whose point lies behind it on the same ray, so its offset is almost all along the
    #: ray: in the demos of stack_wine and phone_on_base every keyframe lies within 1.1 cm of its
    #: pixel's ray, while its world-axis offsets reach 47 cm and vary by up to 10 cm between demos
    #: of one keyframe (the ray distance by at most 2.7 cm). Across the ray the actor then needs
    #: only ``relative_lateral_range`` of reach, and is that much finer there. The camera's
    #: position is measured from the demos' point clouds (``camera_ray.camera_centre``). Measured
    #: (stack_wine, the authors' action mode, 100 min, seed 0): final 0.16, best 0.44, first pose
    #: 1.9 cm off, against 0.08, 0.24, 4.2 cm with "world"; within the noise on success, so off.
    actor_offset_frame: str = "world"
    #: with ``actor_relative_xyz``: the pose agent (actor) sees the crop's points as offsets from
    #: the anchor (the crop centre's point) instead of world coordinates. Its features are pooled
    #: over the crop, so with world coordinates it cannot tell where the anchor lies on the object:
    #: attention one pixel over (~1.5 cm at 64 px) moves the anchor, and the pose with it, while
    #: the actor's output stays the same. Measured (``bench/actor_fit.py``, behaviour cloning of
    #: the actor alone, 20 held-out stack_wine demos at 64 px): held-out pose error 1.9 / 3.4 cm
    #: (median / 90th percentile) against 3.3 / 17.7 in world coordinates; BC on stack_wine put the
    #: first pose 2.1 cm from the expert's against 15.0. In ARM (seed 0): phone_on_base in the
    #: authors' action mode 0.96 after 2 h (last three 0.97) against 0.64 for the world crop;
    #: pick_and_lift 0.88 after 2 h against 0.60 (see CPU_DIFFERENCES: on in the ``cpu`` preset).
    actor_points_from_anchor: bool = False
    #: with "camera_ray": the least reach across the ray (m); a pixel is ~1.5 cm of the scene at
    #: 64 px, so 3 cm lets the actor correct an attention error of about two pixels.
    relative_lateral_range: float = 0.03
    #: with ``actor_relative_xyz``: the anchor is, of the ``anchor_window`` x ``anchor_window``
    #: pixels about the crop centre, the point nearest the camera (1: the centre's point, as
    #: before). Where a keyframe's pixel lies on a thin object, the pixel beside it sees what is
    #: behind: on 50 stack_wine demos (64 px, ``bench/anchor_sensitivity.py``) one pixel off the
    #: grasp's pixel moves the centre's anchor by a median 5.9 cm (90th percentile 29.6; 55% of
    #: such pixels over 5 cm: the table behind the bottle's neck), the release's 30.6 cm at the
    #: 90th percentile; with a 3x3 window 0.0 / 1.6 cm and 1.8 / 2.3 cm, none over 5 cm. The
    #: camera's position is measured from the demos' point clouds, as for "camera_ray".
    anchor_window: int = 1
    #: with ``actor_relative_xyz``: the clip of ``anchor + offset`` into the action bounds passes
    #: gradients straight through (as if it were not there). A plain clip gives a clipped axis no
    #: gradient, so a mean pose outside the bounds stays there: the umbrella's pre-grasp hangs 36
    #: cm above its pixel's point on the table behind (x +41 cm), both below the bounds, so the
    #: actor's first pose sat on the bounds' corner, 18 cm from the demos', with or without the
    #: demo term (``bench/actor_fit.py``, stage 0: 18.3 cm median, 1.1 with it). In ARM (seed 0,
    #: 105 min) the umbrella then ended at 1.00, 1.00 in every evaluation from 825 env steps on,
    #: against 0.64 after 45 min before. False: the plain clip (cells run before 2026-12-06's
    #: fourteenth sitting).
    actor_bounds_straight_through: bool = True
    #: the pose error of the demo term (``demo_actor_weight``) and of the BC baseline, position
    #: part: 0 = each axis in its own squashed units (the axis's reach counts 1); > 0 = metres over
    #: this scale on every axis. In squashed units an axis with a long reach barely counts: with
    #: camera-ray offsets on stack_wine the reach along the ray is 0.70 m (the carry's pixel is on
    #: the table ~50 cm behind it) and 3 cm across, so a 3.5 cm error along the ray weighs what a
    #: 0.15 cm one across does, and the actor kept 2-3 cm biases along the ray on its own demos.
    #: (0.03 in the ``cpu`` preset, see CPU_DIFFERENCES.)
    position_error_scale: float = 0.0
    #: < 0 (paper): Q-attention may pick any pixel. >= 0: only pixels whose 3-D point lies within
    #: the action bounds widened by this many metres per axis (a pixel without depth never), the
    #: scene-bounds prior of C2F-ARM; if no pixel qualifies, any pixel may be picked.
    attention_workspace_margin: float = -1.0
    #: weight of the actor's behaviour-cloning term on demo transitions (0: the paper's SAC).
    #: TD3+BC's form: the squared error (normalised action space) is scaled by this times the
    #: batch's mean |Q|, so the term keeps its balance with -Q whatever the reward scale.
    demo_actor_weight: float = 0.0
    #: both demo terms also act on every transition of the agent's own successful episodes:
    #: self-imitation, so the pose agent is held to what worked in many scenes, not only the demos'.
    imitate_successes: bool = False
    actor_lr: float = 1e-3
    critic_lr: float = 2.5e-3
    #: False (authors' ARM): the SAC temperature stays at ``init_alpha``; True: tuned towards
    #: ``target_entropy`` with ``alpha_lr``.
    alpha_auto_tune: bool = False
    alpha_lr: float = 1e-4
    init_alpha: float = 0.05
    #: exploration samples u = mu + scale * std * noise (1: SAC's own policy, the paper). Off-policy
    #: learning is unchanged; only the behaviour policy is narrower.
    exploration_noise_scale: float = 1.0
    #: SAC target entropy (authors: -8, minus the action dimension).
    target_entropy: float = -8.0
    #: the actor's log-std is squashed into [log_std_min, log_std_max].
    log_std_min: float = -40.0
    log_std_max: float = 4.0

    # ---------------------------------------------------------------- optimisation
    batch_size: int = 128
    weight_decay: float = 1e-5
    #: every gradient element is clipped into [-grad_clip, grad_clip] (authors: by value, 5).
    grad_clip: float = 5.0

    # ---------------------------------------------------------------- compute (what is learned stays
    # the same within the tolerance ``bench/bench_learning.py`` measures as loss_rel_diff)
    #: "bf16": forward passes under bfloat16 autocast, fp32 master weights and fp32 losses (CPUs with
    #: AVX-512 BF16 / AMX, CUDA GPUs); "off": fp32 throughout; "auto": bf16 where the device computes
    #: bfloat16 natively, else off (decided per process, so a run moved to an AVX2 CPU stays fast).
    amp: str = "off"

    # ---------------------------------------------------------------- prioritised replay
    replay_capacity: int = 100_000
    #: priority exponent (P(i) ~ p_i^alpha); authors 0.7.
    replay_alpha: float = 0.7
    #: importance-sampling exponent at the start, annealed linearly to ``replay_beta_final``.
    replay_beta: float = 0.5
    #: authors: beta stays at 0.5.
    replay_beta_final: float = 0.5
    #: number of ``sample`` calls over which beta is annealed.
    replay_beta_steps: int = 40_000
    #: added to |TD| so no transition gets zero probability.
    priority_eps: float = 1e-6
    #: share of every batch drawn from the demo transitions (prioritised within the demos), the
    #: rest from the agent's own; 0 = one shared buffer (paper). RLPD-style "symmetric sampling".
    replay_demo_fraction: float = 0.0

    def __post_init__(self) -> None:
        self.unet_filters = tuple(int(f) for f in self.unet_filters)
        if self.attention_stride < 1:
            raise ValueError(f"attention_stride {self.attention_stride} must be >= 1 (1: off)")
        levels = self.attention_stride * 2 ** len(self.unet_filters)
        if self.image_size % levels:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {levels} "
                             f"(attention_stride {self.attention_stride}, then one halving per "
                             f"U-Net level)")
        if self.crop_size < 1 or self.crop_size > self.image_size:
            raise ValueError(f"crop_size {self.crop_size} must be in [1, image_size]")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp {self.amp!r} must be one of {', '.join(AMP_CHOICES)}")
        if not 0 <= self.replay_demo_fraction < 1:
            raise ValueError(f"replay_demo_fraction {self.replay_demo_fraction} must be in [0, 1)")
        if not 0 < self.tau <= 1 or not 0 <= self.gamma < 1:
            raise ValueError("need 0 < tau <= 1 and 0 <= gamma < 1")
        if not self.position_error_scale >= 0:
            raise ValueError(f"position_error_scale {self.position_error_scale} must be >= 0 (0: squashed units)")
        if self.greedy_refine_samples < 0 or not self.greedy_refine_cm > 0:
            raise ValueError(f"greedy_refine_samples {self.greedy_refine_samples} must be >= 0 (0: off) "
                             f"and greedy_refine_cm {self.greedy_refine_cm} > 0")
        if not 0 <= self.actor_average_tau <= 1:
            raise ValueError(f"actor_average_tau {self.actor_average_tau} must be in [0, 1] (0: off)")
        if self.actor_offset_frame not in ("world", "camera_ray"):
            raise ValueError(f"actor_offset_frame {self.actor_offset_frame!r} must be 'world' or 'camera_ray'")
        if self.actor_offset_frame == "camera_ray" and not self.actor_relative_xyz:
            raise ValueError("actor_offset_frame 'camera_ray' is a frame for the relative offset: "
                             "it needs actor_relative_xyz True")
        if self.anchor_window < 1 or self.anchor_window % 2 == 0 or self.anchor_window > self.crop_size:
            raise ValueError(f"anchor_window {self.anchor_window} must be odd, >= 1 and <= crop_size "
                             f"{self.crop_size} (1: the crop centre's point)")
        if self.anchor_window > 1 and not self.actor_relative_xyz:
            raise ValueError("anchor_window chooses the anchor of the relative offset: it needs "
                             "actor_relative_xyz True")
        if self.actor_points_from_anchor and not self.actor_relative_xyz:
            raise ValueError("actor_points_from_anchor shows the actor its crop about the anchor the "
                             "relative offset starts from: it needs actor_relative_xyz True (with "
                             "actor_relative_xyz=false set actor_points_from_anchor=false too)")
        if not self.q_attention and (self.crop_size != self.image_size or self.actor_relative_xyz):
            raise ValueError("without Q-attention the pose agent sees the whole image: need "
                             "crop_size == image_size and actor_relative_xyz False "
                             "(use config.without_attention(cfg))")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), for saving next to checkpoints."""
        d = dataclasses.asdict(self)
        d["unet_filters"] = list(d["unet_filters"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ARMConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise (a checkpoint from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ARMConfig fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ARMConfig":
        return dataclasses.replace(self, **changes)


#: What the ``cpu`` preset changes and why (learning must be practical on 2 CPU cores).
CPU_DIFFERENCES: dict[str, str] = {
    "image_size": "64 (paper 128): the U-Net cost scales with pixels; 4x fewer pixels. "
                  "The camera must render 64x64 for this preset.",
    "batch_size": "32 (paper 128): 4x cheaper updates; more updates per second of wall clock.",
    "replay_capacity": "20000 (paper 1e5): each transition holds two observations "
                       "(~72 KB at 64x64), 1e5 would need ~7 GB of RAM.",
    "replay_beta_final / replay_beta_steps": "1.0 / 10000 (authors: beta fixed at 0.5): the "
        "importance weights anneal to full correction within a CPU run's updates; kept from the "
        "measured runs.",
    "attention_low_dim / attention_low_dim_pose": "True / False (authors: no low-dim state in "
        "Q-attention): the stage features (gripper open, finger positions, time) are tiled over "
        "the Q-attention input so the stages of a multi-step task can be told apart where the "
        "image alone cannot (the gripper above the cup before and after the grasp); the hand's "
        "pose is not. With the pose tiled, Q-attention keyed on the exact pose every demo reaches: "
        "on pick_up_cup its value at the grasp pixel fell from 81 after the expert's pre-grasp "
        "to 7 after the agent's own, 2 cm away (75 with the expert's low-dim state on the agent's "
        "image; bench/attention_sensitivity.py), and attention left the cup in the collapsed "
        "evaluations. Stage features only (seed 0, 80 min, docs/benchmark/attention_stage): the "
        "value stayed at 68, mean success from 300 env steps 0.85 against 0.72, 2 evaluations "
        "below 0.5 against 4 of 17, final 0.88 against 0.96.",
    "unet_stem_kernel / unet_kernel": "3 / 3 (authors 5 / 5): the full-resolution U-Net "
        "is ~80% of an update on CPU; 3x3 kernels halve its forward time.",
    "pose_stem / actor_channels / critic_channels / critic_layers": "16 / 32 / 32 / 3 "
        "(32 / 64 / 128 / 4): the critic (twin, run 3x per update) is the next biggest cost.",
    "attention_lr / critic_lr": "1e-3 / 1e-3 (authors 5e-4 / 2.5e-3; the actor's 1e-3 is "
        "theirs): kept from the runs that learned reach_target (1.00) and, with 100 demos, "
        "pick_up_cup (0.96 in 30 min); not re-measured against the authors' values at batch 32.",
    "alpha_auto_tune / init_alpha / alpha_lr": "True / 0.2 / 1e-3 (authors: fixed 0.05): with "
        "the cpu preset's log-std floor of -10 a fixed small alpha lets the std collapse to e^-10 "
        "and exploration stops; tuning towards the entropy target keeps it (with the narrower "
        "behaviour noise below). Re-measured on pick_and_lift (110 min, seed 0, one cell each, "
        "docs/benchmark/fixed_alpha): fixed 0.05 ended at 0.84 against 0.68 auto-tuned (last three "
        "0.79 vs 0.72, mean from 500 env steps 0.69 vs 0.65), and both still fall to 0.00-0.16 in "
        "single evaluations when poses become unexecutable. On phone_on_base in the authors' action "
        "mode (100 min, seed 0, docs/benchmark/fixed_alpha_no_collision_checking) fixed 0.05 ended at "
        "0.20 against 0.64 (last three 0.43 vs 0.69, mean from 500 env steps 0.39 vs 0.74). One task "
        "each way: the tuned temperature stays.",
    "actor_average_tau": "0.01 (authors 0: the actor itself): greedy decisions (evaluation, the "
        "policy node) take their pose from a Polyak average of the actor over about the last 100 "
        "updates; learning and exploration are unchanged. The actor alone swings within tens of "
        "updates: on pick_up_cup an evaluation of 0.28 and the checkpoint 16 updates later at 1.00 "
        "on the same 25 scenes, on pick_and_lift evaluations of 0.16-0.60 between checkpoints at "
        "0.80-0.92. With the average (pick_up_cup, seed 0, 50 min, docs/benchmark/attention_stage/"
        "stage_actor_average): no evaluation below 0.5 in 11 from 300 env steps (mean 0.97), "
        "against 2 of 10 (mean 0.80) without it over the same env steps. One task, one seed.",
    "log_std_min / log_std_max": "-10 / 2 (authors -40 / 4): a std of e^-40 is numerically "
                                 "deterministic and its log-prob (~ +320) dominates alpha*log_pi.",
    "actor_points_from_anchor": "True (paper: no relative actor, so no anchor): the actor reads "
        "its crop's points as offsets from the anchor its pose is relative to, not in world "
        "coordinates; it pools over the crop, so in world coordinates it cannot tell where the "
        "anchor lies on the object (bench/actor_fit.py, stack_wine held-out poses 1.9 / 3.4 cm "
        "median / 90th percentile against 3.3 / 17.7). ARM, 2 h, seed 0, fp32, one thread, "
        "docs/benchmark/actor_points: pick_and_lift (collision-checked) final 0.88 against 0.60, "
        "last three 0.85 vs 0.71, mean from 500 env steps 0.82 vs 0.70 (none of 18 evaluations "
        "below 0.5 vs 2 of 13); phone_on_base (authors' action mode) 0.96 vs 0.64; stack_wine "
        "(authors' mode, with camera-ray offsets) 0.28 vs 0.16 in 100 min; pick_up_cup 0.96 vs 0.96 after 25 "
        "min. take_lid_off_saucepan, the umbrella, put_rubbish_in_bin and reach_target were "
        "measured before it was on.",
    "position_error_scale": "0.03 (paper: no demo term; squashed units before): the demo "
        "term measures the pose's position error in metres over 3 cm on every axis, not in each "
        "axis's squashed units, where an axis with a long reach barely counts (bench/actor_fit.py, "
        "stack_wine held-out poses 0.92 / 1.90 cm median / 90th percentile against 1.93 / 3.38). "
        "ARM, seed 0, collision-checked, docs/benchmark/position_scale and actor_points: "
        "phone_on_base 1.00 after 2 h against 0.56 (last three 0.97 vs 0.65, mean from 500 env "
        "steps 0.94 vs 0.73); pick_and_lift 0.96 vs 0.88 (2 h, mean 0.94 vs 0.82); pick_up_cup "
        "1.00 vs 0.96 (30 min); take_lid_off_saucepan over three seeds, 30 min: final 0.72 / 1.00 "
        "/ 1.00 vs 1.00 / 0.84 / 0.96 (mean 0.91 vs 0.93, last three 0.95 vs 0.94): within the "
        "seeds' spread. stack_wine (authors' mode, with camera-ray offsets and a third U-Net "
        "level) 0.76 against 0.36. Measured with it after it was on: put_rubbish_in_bin 0.88 (75 "
        "min, mean from 300 env steps 0.94), reach_target 1.00, the umbrella 0.64 (45 min; its first "
        "pose stuck on the bounds' corner, as it was without the scale in a 15-minute check: the "
        "clip's missing gradient, see actor_bounds_straight_through; with it 1.00 after 105 min).",
    "actor_relative_xyz": "True (paper False): xyz as an offset from the attended 3-D point, at "
        "least +-10 cm and per axis as far as the demos need (reach_target 10 / 10 / 10 cm, "
        "pick_up_cup 20 / 10 / 21 cm: its pre-grasp pose hangs above the cup and its pixel's point "
        "is on the table behind; with a fixed 10 cm 39% of its demo actions, the first keyframe "
        "of every demo, could not be expressed and 92% of first poses were unexecutable). With "
        "the paper's absolute form the actor collapsed to one constant pose in a 20-minute run "
        "(1,548 updates): it must regress the crop's position from scratch.",
    "demo_attention_weight / demo_actor_weight": "1.0 / 0.4 (paper 0 / 0): demo losses "
        "(DQfD/CQL-style margin for Q-attention, TD3+BC for the actor). A few thousand CPU updates "
        "are not enough for sparse-reward TD alone to single out the demo pixel and pose.",
    "gamma": "0.9 (paper 0.99): with rewards x100, reaching the target now (Q 100) and "
        "one wasted step first (Q 99) differ by 1, far below the Q noise of a few thousand CPU "
        "updates; measured: Q-attention picked the robot or the image edge at step 0 in 5 of 12 "
        "evaluation scenes while the pose agent hit the target to 2 cm whenever attention was on "
        "it. With 0.9 a wasted step costs 10.",
    "attention_workspace_margin": "0.1 (paper: none): attend only to points within 10 cm of "
        "the demos' pose bounds. Measured: the failing evaluation episodes attended to the same "
        "two out-of-workspace pixels (the robot's top at the image edge, the far wall), whose Q "
        "bootstrapped itself up; no next-best pose can lie there. The relative actor's reach "
        "widens it per axis (take_lid_off_saucepan: 25 cm on x and z), or 15 of its 87 demo "
        "pixels, on the table behind the free-space pre-grasp pose, could never be attended.",
    "exploration_noise_scale": "0.25 (paper 1): the policy's std on xyz grew to 5-9 cm (the "
        "entropy target is a sum over 8 dims; rotation and gripper took the precision), so only "
        "1 in 8 exploring episodes hit the 5 cm target even with attention on it, and each miss "
        "taught Q-attention that the target pixel is worth 0: evaluation fell from 0.88 to 0.56 "
        "over 1,700 updates.",
    "imitate_successes": "True (paper False): measured with only the demos imitated, Q-attention "
        "stayed on the keyframe (0.80 of evaluation scenes) while the pose agent drifted: its error "
        "on the demos stayed ~0.001 but on new scenes the median first pose went from 1.4 cm "
        "(800 updates) to 9 cm with half the poses unexecutable (2,000 updates), evaluation 1.00 "
        "-> 0.36. Ten demo scenes are too few to hold the actor against a critic that is still "
        "wrong away from its data; every successful episode adds a scene.",
    "amp": "auto (authors: fp32): bfloat16 autocast where the CPU or GPU computes it natively "
           "(AVX-512 BF16, AMX, CUDA), fp32 elsewhere; fp32 master weights and losses. 1.5x the "
           "updates in the same minutes on an AVX-512 BF16 CPU (one thread), losses within 0.006 "
           "of fp32 over 50 fixed-seed updates (bench/bench_learning.py). Learning, 40-minute "
           "cells, seed 0, docs/benchmark/amp_bf16: take_lid_off_saucepan final 0.88 vs 0.92 fp32 "
           "(last three 0.89 vs 0.75), pick_up_cup 1.00 vs 1.00 (last three 0.96 vs 0.97; bf16 "
           "dipped to 0.36-0.44 for three evaluations midway, fp32 did not).",
    "replay_demo_fraction": "0.5 (paper 0: one shared buffer): the demo terms act only on demo "
        "samples, and 35 demo transitions among ~1,500 agent ones are 2% of a batch; a 30-minute "
        "run reached 100% at 103 env steps and then decayed to 20% as the demos were diluted.",
}

#: Where the ``paper`` preset is not the authors' code, and why (everything else matches it).
PAPER_DEPARTURES: dict[str, str] = {
    "simulator": "MuJoCo rebuilds of the eight RLBench tasks with scripted experts, not CoppeliaSim "
                 "(not installable here); planning by OMPL RRTConnect, not SBL.",
    "actor encoder": "the actor has its own conv stem on the crop; the authors' actor reads the "
                     "critic's shared stem (detached).",
    "crop at the border": "crops are zero-padded so the chosen pixel is always the crop centre; "
                          "the authors clamp the crop inside the image.",
    "priorities": "the new priority is the mean |TD| of Q-attention and critic (the replay "
                  "applies alpha); the authors use sqrt(Huber) normalised by the batch maximum.",
    "log-std and log-prob": "log-std soft-clamped into [-40, 4] and the tanh correction in the "
                            "stable softplus form; the authors clamp hard and use "
                            "log(relu(1 - a^2) + 1e-6).",
    "action bounds": "the demos' translation range widened by 20% of the range per side (at "
                     "least 1 cm); the authors widen by 20% of each bound's absolute value "
                     "(_modify_action_min_max), which depends on where RLBench's world origin "
                     "lies and has no counterpart in this workcell's frame.",
    "action mode": "by default the simulator plans around the scene and a move that stops short "
                   "of its goal ends the episode; the authors' RLBench action mode "
                   "(ABS_EE_POSE_PLAN_WORLD_FRAME) plans with ignore_collisions=True and never "
                   "fails a move for stopping short: `--no-collision-checking` (arm train, "
                   "arm benchmark) is theirs.",
    "quaternion sign": "actions and states use one canonical quaternion sign (w >= 0, with a "
                       "tie-break on w ~ 0 where every top-down grasp lies).",
}

PRESETS: dict[str, ARMConfig] = {
    "paper": ARMConfig(),
    "cpu": ARMConfig(
        image_size=64,
        batch_size=32,
        replay_capacity=20_000,
        replay_beta_final=1.0,
        replay_beta_steps=10_000,
        attention_low_dim=True,
        attention_low_dim_pose=False,
        unet_stem_kernel=3,
        unet_kernel=3,
        pose_stem=16,
        actor_channels=32,
        critic_channels=32,
        critic_layers=3,
        attention_lr=1e-3,
        critic_lr=1e-3,
        actor_average_tau=0.01,
        alpha_auto_tune=True,
        init_alpha=0.2,
        alpha_lr=1e-3,
        log_std_min=-10.0,
        log_std_max=2.0,
        actor_relative_xyz=True,
        actor_points_from_anchor=True,
        demo_attention_weight=1.0,
        demo_actor_weight=0.4,
        position_error_scale=0.03,
        replay_demo_fraction=0.5,
        imitate_successes=True,
        gamma=0.9,
        attention_workspace_margin=0.1,
        exploration_noise_scale=0.25,
        amp="auto",
    ),
}


def without_attention(cfg: ARMConfig) -> ARMConfig:
    """The paper's SAC baseline of ``cfg``: the same pose agent on the full image, no Q-attention."""
    return cfg.replace(q_attention=False, crop_size=cfg.image_size, actor_relative_xyz=False,
                       actor_points_from_anchor=False, anchor_window=1, demo_attention_weight=0.0)


def preset(name: str, **overrides: Any) -> ARMConfig:
    """A copy of ``PRESETS[name]`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)

