"""arm_policy.plots: learning-curve PNGs and Q-attention heat maps (OpenCV-drawn)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from arm_policy.plots import (
    CROP_COLOR,
    CURVE_COLORS,
    attention_snapshot,
    crop_box,
    heatmap_image,
    learning_curve_image,
    plot_learning_curve,
)


def read_rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def count_color(img, color):
    return int(np.all(img == np.array(color, np.uint8), axis=-1).sum())


def curve_rows(n=20, slope=1.0):
    return [{"env_steps": 500 * (i + 1), "eval_success": min(1.0, slope * i / n), "loss": 1.0}
            for i in range(n)]


def test_learning_curve_png(tmp_path):
    rows = curve_rows()
    rows.insert(3, {"env_steps": 1234, "loss": 0.5})  # a training row without eval: skipped
    out = plot_learning_curve(rows, tmp_path / "sub" / "curve.png", title="reach_target",
                              compare=("SAC (no Q-attention)", curve_rows(slope=0.2)))
    img = read_rgb(out)
    assert img.shape == (500, 800, 3)
    # both curves are drawn in their colours, the background is white
    assert count_color(img, CURVE_COLORS[0]) > 300
    assert count_color(img, CURVE_COLORS[1]) > 300
    assert count_color(img, (255, 255, 255)) > 0.5 * img.shape[0] * img.shape[1]
    # the same array is available in memory, with a custom size
    arr = learning_curve_image(rows, size=(640, 400))
    assert arr.shape == (400, 640, 3) and arr.dtype == np.uint8
    assert count_color(arr, CURVE_COLORS[1]) == 0  # no compare -> one curve


def test_learning_curve_compare_forms_and_empty(tmp_path):
    multi = learning_curve_image(curve_rows(), compare={"a": curve_rows(slope=0.5),
                                                        "b": curve_rows(slope=0.1)})
    assert count_color(multi, CURVE_COLORS[2]) > 100
    plain = learning_curve_image(curve_rows(), compare=curve_rows(slope=0.5))
    assert count_color(plain, CURVE_COLORS[1]) > 100
    # no data at all still gives a readable (empty) plot rather than an exception
    out = plot_learning_curve([], tmp_path / "empty.png", y="loss")
    assert read_rgb(out).shape == (500, 800, 3)
    one = learning_curve_image([{"env_steps": 10, "eval_success": 0.5}])
    assert count_color(one, CURVE_COLORS[0]) > 10


def test_a_curve_keeps_the_colour_it_is_given_whatever_its_place_in_the_panel():
    """The benchmark's panels show different subsets of methods: BC must not be green in one
    panel and orange in the next."""
    img = learning_curve_image(curve_rows(), label="BC", colors={"BC": CURVE_COLORS[2]})
    assert count_color(img, CURVE_COLORS[2]) > 300 and count_color(img, CURVE_COLORS[0]) == 0


def test_six_runs_in_one_plot_are_six_colours():
    rows = curve_rows()
    img = learning_curve_image(rows, compare={f"run {i}": rows for i in range(1, 6)}, size=(800, 500))
    assert len(set(CURVE_COLORS)) == len(CURVE_COLORS) >= 10
    for color in CURVE_COLORS[:6]:
        assert count_color(img, color) > 20, color


def test_crop_box_is_centred_and_clamped():
    assert crop_box((70, 40), 16, (128, 128)) == (62, 32, 77, 47)
    assert crop_box((2, 125), 16, (128, 128)) == (0, 112, 15, 127)
    assert crop_box((127, 0), 16, (128, 128)) == (112, 0, 127, 15)


@pytest.mark.parametrize("pixel", [(70, 40), (2, 125)])
def test_attention_snapshot(tmp_path, pixel):
    H = W = 128
    scale = 4
    yy, xx = np.mgrid[:H, :W]
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = xx * 2
    rgb[..., 2] = 90
    q = np.exp(-((yy - pixel[0]) ** 2 + (xx - pixel[1]) ** 2) / 200.0).astype(np.float32)
    q[0, 0] = np.nan  # non-finite values must not break the colour map
    out = attention_snapshot(rgb, q, pixel, crop_size=16, out_png=tmp_path / "att.png",
                             scale=scale)
    img = read_rgb(out)
    gap = 4
    assert img.shape == (H * scale, 2 * W * scale + gap, 3)
    assert np.array_equal(img, heatmap_image(rgb, q, pixel, 16, scale))

    r0, c0, r1, c1 = crop_box(pixel, 16, (H, W))
    top, bottom = r0 * scale, (r1 + 1) * scale - 1
    lft, rgt = c0 * scale, (c1 + 1) * scale - 1
    mid_r, mid_c = (top + bottom) // 2, (lft + rgt) // 2
    for off in (0, W * scale + gap):  # both panels
        edge = [(top, mid_c + off), (bottom, mid_c + off), (mid_r, lft + off),
                (mid_r, rgt + off)]
        for r, c in edge:
            assert tuple(img[r, c]) == CROP_COLOR, (r, c, img[r, c])
    # inside the crop, away from its border, the image is not the rectangle colour
    assert tuple(img[top + 8, lft + 8]) != CROP_COLOR
    # the left panel is the RGB image, upscaled by nearest neighbour (top row, away from the crop)
    for c in (20, 50, 90):
        assert tuple(img[0, c * scale + 1]) == tuple(rgb[0, c])
    # the heat panel is hottest (red-ish) at the chosen pixel and cold (blue-ish) far away
    hot = img[pixel[0] * scale + 1, W * scale + gap + pixel[1] * scale + 1].astype(int)
    assert hot[0] > hot[2]


def test_heatmap_image_small_and_float_inputs():
    rgb = np.random.default_rng(0).random((32, 48, 3))  # floats in [0, 1]
    q = np.zeros((1, 32, 48))  # (1, H, W) and constant Q
    out = heatmap_image(rgb, q, (10, 10), crop_size=8, scale=1)
    assert out.shape == (32, 2 * 48 + 4, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="q_map"):
        heatmap_image(np.zeros((32, 48, 3), np.uint8), np.zeros((16, 16)), (0, 0))
    with pytest.raises(TypeError, match="out_png"):
        attention_snapshot(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8)), (4, 4))


def test_the_legend_lies_under_the_plot_so_no_curve_hides_behind_it():
    flat = [{"env_steps": 100 * i, "eval_success": 0.0} for i in range(20)]  # along the bottom
    names = {"a long name for the second curve": flat, "and another long one for the third": flat}
    img = learning_curve_image(flat, compare=names, size=(800, 500))
    below = img[-60:]  # the legend rows, under the x label
    for color in CURVE_COLORS[:3]:
        assert count_color(below, color) > 20
    # the 0% line is drawn all the way across the plot in the last curve's colour (on top)
    rows_with_curve = np.flatnonzero(np.all(img == np.array(CURVE_COLORS[2], np.uint8), axis=-1).sum(1) > 500)
    assert rows_with_curve.size and rows_with_curve.max() < 500 - 60
