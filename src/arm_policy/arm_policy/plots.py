"""Learning-curve plots and Q-attention heat maps, drawn with OpenCV (no matplotlib).

OpenCV (``opencv-python-headless``) is already a project dependency, so these add none; both
functions are deterministic and headless. Images returned by functions in this module are RGB
uint8 (``sensor_msgs/Image`` encoding ``rgb8``); PNG files are written with the right channel
order.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

__all__ = [
    "CROP_COLOR",
    "attention_snapshot",
    "crop_box",
    "heatmap_image",
    "learning_curve_image",
    "plot_learning_curve",
]

# colours are RGB
CROP_COLOR = (0, 255, 0)
#: matplotlib's tab10: ten curves before a colour repeats
CURVE_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
_BG = (255, 255, 255)
_AXIS = (40, 40, 40)
_GRID = (225, 225, 225)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _write_png(out_png: os.PathLike | str, rgb: np.ndarray) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {out}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, out)  # a viewer never sees a half-written PNG
    return out


# --------------------------------------------------------------------------- learning curves


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for one axis, in one style: 0, 2500, 5000 / 0, 20k, 40k / 0.25, 0.5 / 1.5M."""
    if not ticks:
        return []
    step = ticks[1] - ticks[0] if len(ticks) > 1 else max(abs(ticks[0]), 1.0)
    top = max(abs(t) for t in ticks)
    div, suffix = (1e6, "M") if top >= 1e6 else (1e3, "k") if top >= 2e4 else (1.0, "")
    step /= div
    digits = next((d for d in range(7) if abs(round(step, d) - step) < 1e-9 * step), 6)
    return [f"{t / div:.{digits}f}{suffix}" if t != 0 else "0" for t in ticks]


def _series(rows: Iterable[Mapping], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    pts = []
    for r in rows:
        if x in r and y in r:
            try:
                xv, yv = float(r[x]), float(r[y])
            except (TypeError, ValueError):
                continue
            if math.isfinite(xv) and math.isfinite(yv):
                pts.append((xv, yv))
    pts.sort(key=lambda p: p[0])
    a = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _normalise_compare(compare) -> list[tuple[str, Sequence[Mapping]]]:
    if compare is None:
        return []
    if isinstance(compare, Mapping):
        return [(str(k), v) for k, v in compare.items()]
    if isinstance(compare, tuple) and len(compare) == 2 and isinstance(compare[0], str):
        return [(compare[0], compare[1])]
    return [("baseline", compare)]


def _text(img, s, org, scale=0.5, color=_AXIS, thick=1):
    cv2.putText(img, s, org, _FONT, scale, color, thick, cv2.LINE_AA)


def _text_size(s, scale=0.5, thick=1):
    (w, h), base = cv2.getTextSize(s, _FONT, scale, thick)
    return w, h, base


def learning_curve_image(rows: Sequence[Mapping], x: str = "env_steps", y: str = "eval_success",
                         title: str | None = None, compare=None, *, label: str = "ARM",
                         size: tuple[int, int] = (800, 500), ylim=None,
                         ylabel: str | None = None, bands: Mapping | None = None,
                         colors: Mapping | None = None) -> np.ndarray:
    """The plot of ``plot_learning_curve`` as an (H, W, 3) RGB uint8 array (``size`` = (W, H)).
    ``bands``: {curve label: (x, low, high)} shades a spread (over seeds) under that curve;
    ``colors``: {curve label: RGB}, so one method keeps its colour across panels."""
    W, H = size
    img = np.full((H, W, 3), _BG, np.uint8)
    curves = [(label, rows)] + _normalise_compare(compare)
    data = [(name, *_series(r, x, y)) for name, r in curves]
    palette = [(colors or {}).get(name, CURVE_COLORS[i % len(CURVE_COLORS)]) for i, (name, _) in enumerate(curves)]

    xs = np.concatenate([d[1] for d in data]) if data else np.empty(0)
    ys = np.concatenate([d[2] for d in data]) if data else np.empty(0)
    x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 0.5 if x0 != 0 else 0.0, x1 + 1.0
    rate = bool(ys.size) and ys.min() >= 0 and ys.max() <= 1 and ("success" in y or "rate" in y)
    if 0 <= x0 <= (0.5 if rate else 0.2) * x1:
        x0 = 0.0  # start the x axis at 0 when the data nearly does (a success curve: from its start)
    if ylim is not None:
        y0, y1 = map(float, ylim)
    elif rate:
        y0, y1 = -0.03, 1.05  # a little room, so 0% and 100% are not drawn on the frame
    elif ys.size:
        y0, y1 = float(ys.min()), float(ys.max())
        pad = 0.05 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.1, 1.0)
        y0, y1 = y0 - pad, y1 + pad
    else:
        y0, y1 = 0.0, 1.0
    xt, yt = _nice_ticks(x0, x1), _nice_ticks(y0, y1)
    x0, x1 = min(x0, xt[0]), max(x1, xt[-1])
    if ylim is None and not rate:
        y0, y1 = min(y0, yt[0]), max(y1, yt[-1])
    xlabels, ylabels = _tick_labels(xt), _tick_labels(yt)

    left = 30 + max(_text_size(s, 0.45)[0] for s in ylabels) + 12
    right, top = 25, 50 if title else 25
    # the legend goes under the x label, entries left to right in as many rows as they need,
    # so that no curve is ever hidden behind it
    names = [f"{name}" + ("" if cx.size else " (no data)") for name, cx, _ in data]
    entry_w = [_text_size(n, 0.5)[0] + 60 for n in names]
    rows_of, row, used = [], [], 0
    for i, w in enumerate(entry_w):
        if row and used + w > W - left - right:
            rows_of.append(row)
            row, used = [], 0
        row.append(i)
        used += w
    rows_of.append(row)
    legend_h = 24 * len(rows_of)
    bottom = 60 + legend_h
    pw, ph = W - left - right, H - top - bottom

    def px(v):
        return int(round(left + (v - x0) / (x1 - x0) * pw))

    def py(v):
        return int(round(top + ph - (v - y0) / (y1 - y0) * ph))

    # grid + ticks
    for v, s in zip(yt, ylabels):
        if y0 - 1e-9 <= v <= y1 + 1e-9:
            yy = py(v)
            cv2.line(img, (left, yy), (left + pw, yy), _GRID, 1, cv2.LINE_AA)
            cv2.line(img, (left - 5, yy), (left, yy), _AXIS, 1, cv2.LINE_AA)
            tw, th, _ = _text_size(s, 0.45)
            _text(img, s, (left - 8 - tw, yy + th // 2), 0.45)
    for v, s in zip(xt, xlabels):
        if x0 - 1e-9 <= v <= x1 + 1e-9:
            xx = px(v)
            cv2.line(img, (xx, top), (xx, top + ph), _GRID, 1, cv2.LINE_AA)
            cv2.line(img, (xx, top + ph), (xx, top + ph + 5), _AXIS, 1, cv2.LINE_AA)
            tw, th, _ = _text_size(s, 0.45)
            _text(img, s, (xx - tw // 2, top + ph + 10 + th), 0.45)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), _AXIS, 1)

    # axis labels (the y label is drawn horizontally on a strip, then rotated)
    xw, xh, _ = _text_size(x, 0.55)
    _text(img, x, (left + pw // 2 - xw // 2, top + ph + 50), 0.55)
    ylabel = ylabel or y
    yw, yh, ybase = _text_size(ylabel, 0.55)
    strip = np.full((yh + ybase + 4, yw + 4, 3), _BG, np.uint8)
    _text(strip, ylabel, (2, yh + 2), 0.55)
    strip = np.ascontiguousarray(np.rot90(strip))
    sy = max(0, top + ph // 2 - strip.shape[0] // 2)
    sx = 6
    hh, ww = min(strip.shape[0], H - sy), min(strip.shape[1], W - sx)
    img[sy:sy + hh, sx:sx + ww] = strip[:hh, :ww]
    if title:
        tw, th, _ = _text_size(title, 0.7, 2)
        _text(img, title, (max(5, W // 2 - tw // 2), 12 + th), 0.7, (20, 20, 20), 2)

    # curves, clipped to the plot area; spreads shaded under them
    plot = img[top:top + ph + 1, left:left + pw + 1].copy()
    for i, (name, _, _) in enumerate(data):
        if bands and name in bands:
            bx, lo, hi = (np.asarray(v, dtype=float) for v in bands[name])
            if bx.size > 1:
                poly = [(px(a) - left, py(b) - top) for a, b in zip(bx, hi)]
                poly += [(px(a) - left, py(b) - top) for a, b in zip(bx[::-1], lo[::-1])]
                shade = plot.copy()
                cv2.fillPoly(shade, [np.asarray(poly, np.int32)], palette[i])
                plot = cv2.addWeighted(shade, 0.2, plot, 0.8, 0.0)
    for i, (name, cx, cy) in enumerate(data):
        col = palette[i]
        pts = np.stack([[px(a) - left for a in cx], [py(b) - top for b in cy]], 1) \
            .astype(np.int32) if cx.size else np.empty((0, 2), np.int32)
        if len(pts) > 1:
            cv2.polylines(plot, [pts.reshape(-1, 1, 2)], False, col, 2, cv2.LINE_AA)
        if len(pts) <= 60:
            for p in pts:
                cv2.circle(plot, (int(p[0]), int(p[1])), 4, col, -1, cv2.LINE_AA)
    img[top:top + ph + 1, left:left + pw + 1] = plot
    cv2.rectangle(img, (left, top), (left + pw, top + ph), _AXIS, 1)

    # legend under the plot
    for r, members in enumerate(rows_of):
        yy, xx = top + ph + 60 + 24 * r + 10, left
        for i in members:
            col = palette[i]
            cv2.line(img, (xx, yy), (xx + 28, yy), col, 2, cv2.LINE_AA)
            cv2.circle(img, (xx + 14, yy), 4, col, -1, cv2.LINE_AA)
            _text(img, names[i], (xx + 36, yy + 5), 0.5)
            xx += entry_w[i]
    return img


def plot_learning_curve(rows: Sequence[Mapping], out_png: os.PathLike | str,
                        x: str = "env_steps", y: str = "eval_success", title: str | None = None,
                        compare=None, *, label: str = "ARM", size: tuple[int, int] = (800, 500),
                        ylim=None, ylabel: str | None = None) -> Path:
    """Write a line plot of ``y`` against ``x`` to ``out_png`` (``size`` = (W, H) pixels).

    ``rows``: dicts such as ``run_log.read_metrics`` returns; rows lacking ``x`` or ``y`` (or
    with non-finite values) are skipped, points are sorted by ``x``. ``compare`` adds curves:
    a rows list (legend "baseline"), a ``(label, rows)`` pair, or ``{label: rows, ...}``.
    A ``y`` named like a success rate whose values lie in [0, 1] gets a fixed 0..1 axis.
    ``ylabel`` names the y axis (default: ``y``). The legend lies under the plot.
    """
    return _write_png(out_png, learning_curve_image(rows, x, y, title, compare, label=label,
                                                    size=size, ylim=ylim, ylabel=ylabel))


# --------------------------------------------------------------------------- attention maps


def crop_box(pixel: Sequence[int], crop_size: int, shape: Sequence[int]) -> tuple[int, int, int, int]:
    """Inclusive ``(row0, col0, row1, col1)`` of the ``crop_size`` square centred on ``pixel``
    (row0 = row - crop_size // 2), shifted to lie inside an image of ``shape`` (H, W, ...)."""
    H, W = int(shape[0]), int(shape[1])
    cs = int(crop_size)
    r0 = min(max(int(pixel[0]) - cs // 2, 0), max(H - cs, 0))
    c0 = min(max(int(pixel[1]) - cs // 2, 0), max(W - cs, 0))
    return r0, c0, min(r0 + cs, H) - 1, min(c0 + cs, W) - 1


def heatmap_image(rgb: np.ndarray, q_map: np.ndarray, pixel: Sequence[int], crop_size: int = 16,
                  scale: int = 4, *, alpha: float = 0.55, gap: int = 4,
                  annotate: bool = True) -> np.ndarray:
    """Side by side: the RGB image | a JET colour map of Q blended over it; on both the chosen
    crop as a ``CROP_COLOR`` rectangle (2 px, outside edge on the crop's border pixels scaled by
    ``scale``) and a small cross at ``pixel``.

    Returns (H*scale, 2*W*scale + gap, 3) RGB uint8. ``q_map`` (H, W) is min-max normalised
    (non-finite values drawn as the minimum); nearest-neighbour upscaling keeps pixels visible.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb if rgb.max() > 1.0 else rgb * 255.0, 0, 255).astype(np.uint8)
    q = np.asarray(q_map, dtype=np.float64)
    if q.ndim == 3 and q.shape[0] == 1:
        q = q[0]
    H, W = rgb.shape[:2]
    if q.shape != (H, W):
        raise ValueError(f"q_map must be {(H, W)} like rgb, got {q.shape}")
    scale = max(1, int(scale))
    finite = np.isfinite(q)
    qmin = float(q[finite].min()) if finite.any() else 0.0
    qmax = float(q[finite].max()) if finite.any() else 0.0
    qn = np.where(finite, q, qmin)
    qn = (qn - qmin) / (qmax - qmin) if qmax > qmin else np.zeros_like(qn)
    heat_bgr = cv2.applyColorMap((qn * 255).round().astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB)
    blend = cv2.addWeighted(heat, alpha, rgb, 1.0 - alpha, 0.0)

    def up(a):
        return cv2.resize(a, (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)

    left, right = up(rgb), up(blend)
    r0, c0, r1, c1 = crop_box(pixel, crop_size, (H, W))
    pr = min(max(int(pixel[0]), 0), H - 1) * scale + scale // 2
    pc = min(max(int(pixel[1]), 0), W - 1) * scale + scale // 2
    for panel in (left, right):
        cv2.rectangle(panel, (c0 * scale, r0 * scale),
                      ((c1 + 1) * scale - 1, (r1 + 1) * scale - 1), CROP_COLOR, 2)
        arm = max(3, scale)
        cv2.line(panel, (pc - arm, pr), (pc + arm, pr), (255, 255, 255), 1)
        cv2.line(panel, (pc, pr - arm), (pc, pr + arm), (255, 255, 255), 1)
    if annotate and W * scale >= 160:
        fs = 0.4 if W * scale < 320 else 0.5
        _label(left, f"pixel ({int(pixel[0])}, {int(pixel[1])})", fs)
        _label(right, f"Q [{qmin:.3g}, {qmax:.3g}]", fs)
    out = np.full((H * scale, 2 * W * scale + gap, 3), 255, np.uint8)
    out[:, :W * scale] = left
    out[:, W * scale + gap:] = right
    return out


def _label(panel: np.ndarray, s: str, fs: float) -> None:
    """Text with a dark translucent box in the bottom-left corner of ``panel``."""
    tw, th, base = _text_size(s, fs)
    h = panel.shape[0]
    y1, y0, x1 = h - 4, h - 4 - th - base - 6, 4 + tw + 8
    roi = panel[y0:y1, 4:x1]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)
    _text(panel, s, (8, y1 - base - 3), fs, (255, 255, 255))


def attention_snapshot(rgb: np.ndarray, q_map: np.ndarray, pixel: Sequence[int],
                       crop_size: int = 16, out_png: os.PathLike | str | None = None,
                       scale: int = 4, **kwargs) -> Path:
    """Write ``heatmap_image(rgb, q_map, pixel, crop_size, scale)`` to ``out_png``; returns it."""
    if out_png is None:
        raise TypeError("attention_snapshot needs out_png")
    return _write_png(out_png, heatmap_image(rgb, q_map, pixel, crop_size, scale, **kwargs))
