"""sensor_msgs/Image payloads -> numpy, for any message object: rclpy's or rosbags'.

No ROS import: a message is anything with ``height``, ``width``, ``step``, ``encoding``,
``is_bigendian`` and a ``data`` buffer, so the live nodes (through
:mod:`arm_perception.ros_conversions`) and the bag reader (:mod:`arm_perception.bag_codec`)
decode images with this one implementation.

Decoding is vectorised and copies only where the layout needs it: rgb8 / rgba8 / mono8 /
native-endian 32FC1 images without row padding come back as views of ``msg.data``.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["COLOR_ENCODINGS", "COLOR_LAYOUTS", "DEPTH_ENCODINGS", "IMAGE_ENCODINGS", "LAYOUTS",
           "image_rows", "image_to_numpy"]

#: colour encodings: name -> (channels, channel order reversed (BGR))
COLOR_LAYOUTS: dict[str, tuple[int, bool]] = {
    "rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True)}
COLOR_ENCODINGS: tuple[str, ...] = tuple(COLOR_LAYOUTS)
#: depth encodings: 32FC1 in metres, 16UC1 in sensor units (millimetres for a RealSense)
DEPTH_ENCODINGS: tuple[str, ...] = ("32FC1", "16UC1")
#: encoding -> (numpy dtype of one channel, channels)
LAYOUTS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "32FC1": (np.float32, 1),
    "16UC1": (np.uint16, 1),
}
IMAGE_ENCODINGS: tuple[str, ...] = tuple(LAYOUTS)


def image_rows(msg: Any, bytes_per_pixel: int) -> np.ndarray:
    """(H, W * bpp) uint8 view of Image.data, honouring row padding (``step``)."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"{msg.encoding} image has size {w}x{h}: empty image")
    row_bytes = w * bytes_per_pixel
    if step < row_bytes:
        raise ValueError(
            f"{msg.encoding} image {w}x{h}: step {step} is smaller than width * "
            f"{bytes_per_pixel} bytes per pixel = {row_bytes}"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != h * step:
        raise ValueError(
            f"{msg.encoding} image {w}x{h}: data size mismatch: {data.size} bytes, expected "
            f"height * step = {h} * {step} = {h * step}"
        )
    rows = data.reshape(h, step)
    return rows if step == row_bytes else rows[:, :row_bytes]


def image_to_numpy(msg: Any, kind: str | None = None, depth_unit: float = 0.001) -> np.ndarray:
    """sensor_msgs/Image -> numpy array.

    ==========================  ====================================================
    encoding                    result
    ==========================  ====================================================
    rgb8, bgr8                  (H, W, 3) uint8, RGB order
    rgba8, bgra8                (H, W, 4) uint8, RGBA order ((H, W, 3) RGB if kind="color")
    mono8                       (H, W) uint8
    32FC1                       (H, W) float32, metres
    16UC1                       (H, W) float32 metres = raw * ``depth_unit`` (RealSense: 1 mm)
    ==========================  ====================================================

    ``kind`` restricts what is accepted: ``"color"`` (the four colour encodings, always returned
    as (H, W, 3) RGB) or ``"depth"`` (32FC1, 16UC1). ``step`` row padding and ``is_bigendian``
    are honoured. Raises ValueError naming the problem for an unsupported or unexpected
    encoding, an empty image, a ``step`` shorter than a row, or a data size other than
    ``height * step``.
    """
    enc = msg.encoding
    if kind == "color":
        allowed: tuple[str, ...] = COLOR_ENCODINGS
    elif kind == "depth":
        allowed = DEPTH_ENCODINGS
    elif kind is None:
        allowed = IMAGE_ENCODINGS
    else:
        raise ValueError(f"kind must be 'color', 'depth' or None, got {kind!r}")
    if enc not in allowed:
        what = f"{kind} image" if kind else "image"
        raise ValueError(
            f"unsupported {what} encoding {enc!r} (expected one of {', '.join(allowed)})"
        )
    dtype, channels = LAYOUTS[enc]
    itemsize = np.dtype(dtype).itemsize
    h, w = int(msg.height), int(msg.width)
    rows = image_rows(msg, itemsize * channels)

    if enc in COLOR_LAYOUTS:
        img = rows.reshape(h, w, channels)
        reverse = COLOR_LAYOUTS[enc][1]
        # cv2.cvtColor reorders/drops channels ~10x faster than numpy fancy indexing.
        if kind == "color" and channels == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if reverse else cv2.COLOR_RGBA2RGB)
        if reverse:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if channels == 4 else cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(img)
    if enc == "mono8":
        return np.ascontiguousarray(rows)

    order = ">" if msg.is_bigendian else "<"
    typed = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order)).reshape(h, w)
    if enc == "32FC1":
        return typed if typed.dtype.isnative else typed.astype(np.float32)
    # 16UC1: sensor units -> metres (0 = no return stays 0)
    return typed.astype(np.float32) * np.float32(depth_unit)
