"""ARM networks: Q-attention U-Net, crop, pose actor, confidence-aware twin critic.

Observation tensors are (B, 7, H, W): RGB scaled to [-1, 1], the world point cloud with NaN
replaced by 0, and a validity channel (1 where the camera had depth). ``obs_tensor`` builds it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .camera_ray import ray_frame
from .config import ARMConfig
from .demo_dataset import STAGE_FEATURES

__all__ = ["OBS_CHANNELS", "Actor", "ConfidenceCritic", "QAttention", "canonical_quaternion_t",
           "crop", "obs_tensor"]

OBS_CHANNELS = 7  # rgb 3 + xyz 3 + valid 1
PADDING = "zeros"  # replicate padding backward is ~5x slower on CPU


def obs_tensor(rgb: torch.Tensor, point_cloud: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB + (B, H, W, 3) float point cloud (NaN = no depth) -> (B, 7, H, W)."""
    rgb = rgb.float().permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0
    pc = point_cloud.float().permute(0, 3, 1, 2)
    valid = torch.isfinite(pc).all(dim=1, keepdim=True)
    pc = torch.where(valid, pc, torch.zeros_like(pc))
    return torch.cat([rgb, pc, valid.float()], dim=1)


def points_about(crop_obs: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """(B, 7, s, s) crops of ``obs_tensor`` with their points as offsets from ``anchor`` (B, 3);
    zero where the camera had no depth, as in ``obs_tensor``."""
    valid = crop_obs[:, 6:7]
    points = (crop_obs[:, 3:6] - anchor[:, :, None, None].to(crop_obs.dtype)) * valid
    return torch.cat([crop_obs[:, :3], points, valid], dim=1)


def crop(images: torch.Tensor, pixels: torch.Tensor, size: int = 16) -> torch.Tensor:
    """(B, C, H, W) images, (B, 2) (row, col) pixels -> (B, C, size, size) crops.

    The pixel lands at (size // 2, size // 2) of its crop; parts outside the image are zero
    (so the validity channel of ``obs_tensor`` is 0 there). No wraparound, no shifting.
    """
    b, _, h, w = images.shape
    half = size // 2
    padded = F.pad(images, (half, size - half, half, size - half))  # zeros
    pixels = pixels.long()
    rows = pixels[:, 0, None].clamp(0, h - 1) + torch.arange(size, device=images.device)  # padded
    cols = pixels[:, 1, None].clamp(0, w - 1) + torch.arange(size, device=images.device)
    bi = torch.arange(b, device=images.device)[:, None, None]
    out = padded[bi, :, rows[:, :, None], cols[:, None, :]]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2).contiguous()


def canonical_quaternion_t(q: torch.Tensor, tie_eps: float = 0.05) -> torch.Tensor:
    """Torch twin of ``demo_dataset.canonical_quaternion`` on (..., 4) xyzw (normalises too)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    w, xyz = q[..., 3:4], q[..., :3]
    sign = torch.where(w < 0, -1.0, 1.0)
    big = xyz.abs() > tie_eps
    first = big.float().argmax(dim=-1, keepdim=True)
    lead = xyz.gather(-1, first)
    tie = (w.abs() < tie_eps) & big.any(dim=-1, keepdim=True)
    sign = torch.where(tie, torch.where(lead < 0, -1.0, 1.0), sign)
    return q * sign


def _tile(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x[:, :, None, None].expand(-1, -1, h, w)


def _conv(cin: int, cout: int, k: int, stride: int = 1, norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding=k // 2,
                                         padding_mode=PADDING)]
    if norm:
        layers.append(nn.GroupNorm(1, cout))  # layer norm over (C, H, W)
    layers.append(nn.LeakyReLU(0.02))
    return nn.Sequential(*layers)


class _Stem(nn.Module):
    """Per-modality convs (RGB; point cloud + validity), concatenated."""

    def __init__(self, channels: int, kernel: int, norm: bool = False, stride: int = 1):
        super().__init__()
        self.rgb = _conv(3, channels, kernel, stride, norm=norm)
        self.pcd = _conv(4, channels, kernel, stride, norm=norm)
        self.out_channels = 2 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.rgb(x[:, :3]), self.pcd(x[:, 3:])], dim=1)


class _OneChannelConv(nn.Conv2d):
    """A k x k, stride-1, zero-padded conv to one output channel, computed as a 1x1 conv to k*k
    maps summed at their k*k shifts: the same parameters and function (to float rounding), but
    oneDNN's one-output-channel kernel is slow under bfloat16 on CPU (measured 68 -> 33 ms forward
    + backward at 32 x 43 x 64 x 64)."""

    def __init__(self, in_channels: int, kernel: int):
        super().__init__(in_channels, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, pad = self.kernel_size[0], self.padding[0]
        h, w = x.shape[-2:]
        taps = F.conv2d(x, self.weight[0].permute(1, 2, 0).reshape(k * k, -1, 1, 1).to(x.dtype))
        taps = F.pad(taps, (pad, pad, pad, pad))
        out = self.bias.to(taps.dtype).view(1, 1, 1, 1)
        for tap in range(k * k):
            dy, dx = divmod(tap, k)
            out = out + taps[:, tap:tap + 1, dy:dy + h, dx:dx + w]
        return out


class _UNet(nn.Module):
    def __init__(self, cfg: ARMConfig):
        super().__init__()
        self.stride = cfg.attention_stride
        self.stem = _Stem(cfg.unet_stem, cfg.unet_stem_kernel, stride=self.stride)
        # which low-dim entries are tiled over the input (None: all of them); a buffer, so the
        # index is built once and follows the module's device, and no checkpoint holds it
        self.register_buffer("low_dim_index", None if cfg.attention_low_dim_pose
                             else torch.tensor(STAGE_FEATURES), persistent=False)
        self.low_dim = (0 if not cfg.attention_low_dim else
                        cfg.low_dim_size if self.low_dim_index is None else len(STAGE_FEATURES))
        ch = self.stem.out_channels + self.low_dim
        self.down = nn.ModuleList()
        for f in cfg.unet_filters:
            self.down.append(_conv(ch, f, cfg.unet_kernel, stride=2))
            ch = f
        self.up = nn.ModuleList()
        skips = list(cfg.unet_filters[:-1])[::-1] + [self.stem.out_channels + self.low_dim]
        for f, skip in zip(reversed(cfg.unet_filters), skips):
            self.up.append(_conv(ch, f, cfg.unet_kernel))
            ch = f + skip
        self.head = _OneChannelConv(ch, 3)

    def forward(self, x: torch.Tensor, low_dim: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x), low_dim)

    def body(self, x: torch.Tensor, low_dim: torch.Tensor) -> torch.Tensor:
        """Everything after the stem: (B, stem channels, H / stride, W / stride) -> (B, H, W)."""
        if self.low_dim:  # in x's dtype and layout: a mixed cat would copy both (autocast, NHWC)
            if self.low_dim_index is not None:
                low_dim = low_dim.index_select(1, self.low_dim_index)
            x = torch.cat([x, _tile(low_dim.to(x.dtype), *x.shape[-2:])], dim=1)
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        for layer in self.up:
            x = F.interpolate(layer(x), scale_factor=2.0, mode="bilinear", align_corners=False)
            skip = skips.pop()
            x = torch.cat([x.to(skip.dtype), skip], dim=1)
        q = self.head(x)
        if self.stride > 1:
            q = F.interpolate(q, scale_factor=float(self.stride), mode="bilinear", align_corners=False)
        return q[:, 0]


class QAttention(nn.Module):
    """Twin light U-Nets: (B, 7, H, W) obs + (B, L) low-dim -> (B, 2, H, W) per-pixel Q."""

    def __init__(self, cfg: ARMConfig):
        super().__init__()
        self.heads = nn.ModuleList([_UNet(cfg), _UNet(cfg)])

    def forward(self, obs: torch.Tensor, low_dim: torch.Tensor) -> torch.Tensor:
        stems = self._stems(obs).chunk(len(self.heads), dim=1)
        return torch.stack([net.body(stem, low_dim) for net, stem in zip(self.heads, stems)], dim=1)

    def _stems(self, obs: torch.Tensor) -> torch.Tensor:
        """Both heads' stems (RGB and point-cloud convs, LeakyReLU) as one conv over the 7 input
        channels, its weight assembled from theirs with zeros where a stem does not look: the same
        parameters and function, but one pass over the full-resolution input (measured under
        bfloat16 on CPU: 47 -> 20 ms forward + backward at batch 32, 64x64)."""
        weights, biases = [], []
        for net in self.heads:
            rgb, pcd = net.stem.rgb[0], net.stem.pcd[0]
            weights += [F.pad(rgb.weight, (0, 0, 0, 0, 0, OBS_CHANNELS - 3)), F.pad(pcd.weight, (0, 0, 0, 0, 3, 0))]
            biases += [rgb.bias, pcd.bias]
        conv = self.heads[0].stem.rgb[0]
        y = F.conv2d(obs, torch.cat(weights), torch.cat(biases), stride=conv.stride,
                     padding=conv.padding)
        return self.heads[0].stem.rgb[1](y)  # the stems' LeakyReLU

    @staticmethod
    def argmax_pixel(q: torch.Tensor) -> torch.Tensor:
        """(B, H, W) -> (B, 2) (row, col) of the maximum."""
        b, h, w = q.shape
        flat = q.reshape(b, -1).argmax(dim=1)
        return torch.stack([flat // w, flat % w], dim=1)

    @staticmethod
    def at_pixel(q: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) maps, (B, 2) pixels -> (B, K) values."""
        b, k, h, w = q.shape
        flat = (pixels[:, 0].long() * w + pixels[:, 1].long())[:, None, None].expand(b, k, 1)
        return q.reshape(b, k, h * w).gather(2, flat)[..., 0]


class Actor(nn.Module):
    """Tanh-squashed Gaussian over 8-D next-best poses, from a crop and the low-dim state.

    Squashed a in (-1, 1)^8 maps to: xyz inside ``action_bounds`` (2, 3), or, with
    ``cfg.actor_relative_xyz``, ``anchor + a[:3] * relative_range`` clipped into the bounds
    (the gradient passing the clip straight through with ``cfg.actor_bounds_straight_through``),
    where the anchor is the 3-D point at the crop's centre (the Q-attention's pixel: the crop was
    chosen there, so the pose is predicted around it) and ``relative_range`` (3,) the per-axis
    reach (``demo_dataset.relative_xyz_range``; default ``cfg.relative_xyz_range`` on every
    axis). With ``cfg.actor_offset_frame == "camera_ray"`` the three offset axes are those of
    :func:`~arm_policy.camera_ray.ray_frame` at the anchor, seen from ``camera_position`` (3,);
    with ``cfg.actor_points_from_anchor`` the crop's points enter as offsets from the anchor
    (:func:`points_about`), so the offset is predicted from where the scene lies about it; then
    a quaternion (a[3:7]
    normalised, canonical sign); gripper (a[7] + 1) / 2 in [0, 1]. ``log_prob`` is of the
    squashed 8-D sample: Gaussian log-density of the pre-tanh sample u minus
    sum log(1 - tanh(u)^2), in the stable form 2 (log 2 - u - softplus(-2u)). The affine maps and
    the quaternion normalisation are not part of it (constants / not a bijection; as the authors).
    """

    def __init__(self, cfg: ARMConfig, action_bounds, relative_range=None, camera_position=None):
        super().__init__()
        self.stem = _Stem(cfg.pose_stem, 3, norm=True)
        self.convs = nn.Sequential(
            _conv(self.stem.out_channels + cfg.low_dim_size, cfg.actor_channels, 1, norm=True),
            _conv(cfg.actor_channels, cfg.actor_channels, 3, norm=True))
        self.mlp = nn.Sequential(
            nn.Linear(cfg.actor_channels, cfg.actor_hidden), nn.LeakyReLU(0.02),
            nn.Linear(cfg.actor_hidden, cfg.actor_hidden), nn.LeakyReLU(0.02),
            nn.Linear(cfg.actor_hidden, 16))
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max
        self.relative = cfg.actor_relative_xyz
        bounds = torch.as_tensor(action_bounds, dtype=torch.float32).reshape(2, 3)
        self.register_buffer("xyz_low", bounds[0].clone())
        self.register_buffer("xyz_high", bounds[1].clone())
        reach = cfg.relative_xyz_range if relative_range is None else relative_range
        self.register_buffer("relative_range", torch.as_tensor(reach, dtype=torch.float32).expand(3).clone())
        self.points_from_anchor = cfg.actor_points_from_anchor
        self.bounds_straight_through = cfg.actor_bounds_straight_through
        self.position_scale = cfg.position_error_scale
        self.ray_frame = cfg.actor_offset_frame == "camera_ray"
        self.anchor_window = cfg.anchor_window
        if self.ray_frame or self.anchor_window > 1:  # a buffer only then: older checkpoints load
            if camera_position is None:
                which = "actor_offset_frame 'camera_ray'" if self.ray_frame else f"anchor_window {self.anchor_window}"
                raise ValueError(f"{which} needs the camera's position (ARMAgent.from_demos measures it "
                                 "from the demos' point clouds)")
            self.register_buffer("camera_position", torch.as_tensor(camera_position, dtype=torch.float32).reshape(3).clone())

    def _offset_axes(self, anchor: torch.Tensor) -> torch.Tensor | None:
        """(B, 3, 3) rows: the offset's axes in world coordinates (None: the world's own)."""
        return ray_frame(anchor, self.camera_position) if self.ray_frame else None

    def anchor(self, crop_obs: torch.Tensor) -> torch.Tensor:
        """(B, 7, s, s) crops -> (B, 3) the world point at the crop centre, or with
        ``cfg.anchor_window`` > 1 the one nearest the camera of that window about it (the middle
        of the bounds where the camera had no depth there). ``demo_dataset.anchor_point`` is the
        same rule on one demo's cloud."""
        c, h = crop_obs.shape[-1] // 2, self.anchor_window // 2
        if h == 0:
            point, valid = crop_obs[:, 3:6, c, c], crop_obs[:, 6:7, c, c] > 0.5
        else:
            window = crop_obs[:, 3:7, c - h:c + h + 1, c - h:c + h + 1].flatten(2)  # (B, 4, k*k)
            points, ok = window[:, :3], window[:, 3] > 0.5
            distance = (points - self.camera_position[None, :, None].to(points.dtype)).norm(dim=1)
            nearest = distance.masked_fill(~ok, float("inf")).argmin(dim=1)
            point = points.gather(2, nearest[:, None, None].expand(-1, 3, 1))[:, :, 0]
            valid = ok.any(dim=1, keepdim=True)
        return torch.where(valid, point, 0.5 * (self.xyz_low + self.xyz_high))

    def to_action(self, a: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Squashed (B, 8) in [-1, 1] -> pose actions (B, 8)."""
        if self.relative:
            offset, axes = self.relative_range * a[:, :3], self._offset_axes(anchor)
            if axes is not None:
                offset = (offset[:, :, None] * axes).sum(dim=1)  # not einsum: bmm under bf16 autocast
            xyz = anchor + offset
            clipped = torch.maximum(torch.minimum(xyz, self.xyz_high), self.xyz_low)
            xyz = xyz + (clipped - xyz).detach() if self.bounds_straight_through else clipped
        else:
            xyz = self.xyz_low + 0.5 * (a[:, :3] + 1.0) * (self.xyz_high - self.xyz_low)
        return torch.cat([xyz, canonical_quaternion_t(a[:, 3:7]), 0.5 * (a[:, 7:] + 1.0)], dim=1)

    def pose_error(self, action: torch.Tensor, target: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Squared distance (B,) between pose actions in the squashed space of ``to_action``, so
        position, rotation and gripper weigh alike (position in metres over
        ``cfg.position_error_scale`` on every axis instead where that is > 0). Rotation: 2 (1 - |<q, q_target>|), blind to
        the quaternion's sign (q and -q are one rotation; a plain difference would punish the
        canonical sign flip at w ~ 0, which is where every top-down demo pose lies)."""
        if self.position_scale > 0:
            dxyz = (action[:, :3] - target[:, :3]) / self.position_scale
        elif self.relative:
            dxyz, axes = action[:, :3] - target[:, :3], self._offset_axes(anchor)
            if axes is not None:
                dxyz = (axes * dxyz[:, None, :]).sum(dim=2)
            dxyz = dxyz / self.relative_range
        else:
            dxyz = 2.0 * (action[:, :3] - target[:, :3]) / (self.xyz_high - self.xyz_low)
        rotation = 2.0 * (1.0 - (action[:, 3:7] * target[:, 3:7]).sum(1).abs())
        return dxyz.pow(2).sum(1) + rotation + (2.0 * (action[:, 7] - target[:, 7])).pow(2)

    def forward(self, crop_obs: torch.Tensor, low_dim: torch.Tensor, deterministic: bool = False,
                noise_scale: float = 1.0):
        """-> (action (B, 8), log_prob (B,), mean action (B, 8)). ``noise_scale`` < 1 samples a
        narrower behaviour policy (exploration only; learning always uses 1)."""
        anchor = self.anchor(crop_obs)
        if self.points_from_anchor:
            crop_obs = points_about(crop_obs, anchor)
        x = self.stem(crop_obs)
        x = torch.cat([x, _tile(low_dim, *x.shape[-2:])], dim=1)
        x = self.convs(x).amax(dim=(2, 3))
        # fp32 from here under bf16 autocast: a bf16 tanh output quantises the pose (~1 mm over a
        # 20 cm reach), leaves the quaternion 2e-3 off unit length and coarsens log pi
        mu, log_std = self.mlp(x).float().chunk(2, dim=1)
        # soft clamp into [log_std_min, log_std_max]: ~identity in between (std ~1 at init)
        log_std = self.log_std_max - F.softplus(self.log_std_max - log_std)
        log_std = self.log_std_min + F.softplus(log_std - self.log_std_min)
        std = log_std.exp()
        u = mu if deterministic else mu + noise_scale * std * torch.randn_like(mu)
        noise = (u - mu) / std
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(1)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(1)
        return self.to_action(torch.tanh(u), anchor), log_prob, self.to_action(torch.tanh(mu), anchor)


class _CriticNet(nn.Module):
    def __init__(self, cfg: ARMConfig, in_channels: int):
        super().__init__()
        layers, ch = [], in_channels
        for _ in range(cfg.critic_layers):
            layers.append(_conv(ch, cfg.critic_channels, 3, norm=True))
            ch = cfg.critic_channels
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, 2, 3, padding=1, padding_mode=PADDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConfidenceCritic(nn.Module):
    """Twin confidence-aware critics on the crop: per-pixel Q and confidence logits.

    forward -> (q (B, 2, s, s), conf_logit (B, 2, s, s)), twin index on dim 1; confidence is
    ``sigmoid(conf_logit)`` (use ``F.logsigmoid`` for log c). ``best`` picks each twin's Q at its
    most confident pixel -> (B, 2).
    """

    def __init__(self, cfg: ARMConfig):
        super().__init__()
        self.stem = _Stem(cfg.pose_stem, 3, norm=True)
        cin = self.stem.out_channels + cfg.low_dim_size + 8
        self.nets = nn.ModuleList([_CriticNet(cfg, cin), _CriticNet(cfg, cin)])

    def forward(self, crop_obs: torch.Tensor, low_dim: torch.Tensor, action: torch.Tensor):
        x = self.stem(crop_obs)
        x = torch.cat([x, _tile(torch.cat([low_dim, action], dim=1), *x.shape[-2:])], dim=1)
        out = torch.stack([net(x) for net in self.nets], dim=1)  # (B, 2, 2, s, s)
        return out[:, :, 0], out[:, :, 1]

    @staticmethod
    def best(q: torch.Tensor, conf_logit: torch.Tensor) -> torch.Tensor:
        b, k = q.shape[:2]
        idx = conf_logit.reshape(b, k, -1).argmax(dim=2, keepdim=True)
        return q.reshape(b, k, -1).gather(2, idx)[..., 0]
