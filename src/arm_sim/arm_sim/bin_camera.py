"""A small offscreen camera that keeps one GL context across models.

`grasp_bin` compiles a new MjModel at every reset (its objects and hull meshes change), and a
`mujoco.Renderer` per model costs ~0.1 s (a GL context and a 1280x1024 framebuffer each time).
This camera makes the GL context once and, per model, only a render context sized to the image
(~5 ms). Depth, when asked for, is metric (metres along the optical axis, 0 where nothing is hit),
converted the way `mujoco.Renderer` converts it.
"""
from __future__ import annotations

import numpy as np

from .sim import mujoco  # the GL backend is chosen before mujoco is imported, in sim


class BinCamera:
    def __init__(self, height: int, width: int, shadows: bool = False):
        self.height, self.width = int(height), int(width)
        self.shadows = shadows
        self._gl = None
        self._ctx = None
        self._model = None
        self._scene = None
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._opt = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)

    def bind(self, model: mujoco.MjModel, camera: str):
        """Render `model` from its camera named `camera` from now on."""
        from mujoco import gl_context

        if self._gl is None:
            self._gl = gl_context.GLContext(self.width, self.height)
        self._gl.make_current()
        if self._ctx is not None:
            self._ctx.free()
        model.vis.global_.offwidth = max(self.width, 1)
        model.vis.global_.offheight = max(self.height, 1)
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 100)
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.shadows
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.shadows
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        self._cam.fixedcamid = model.camera(camera).id
        self._model = model

    def render(self, data: mujoco.MjData, depth: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(rgb (H, W, 3) uint8, depth (H, W) float32 metres or None)."""
        if self._model is None:
            raise RuntimeError("BinCamera.render before bind")
        self._gl.make_current()
        mujoco.mjv_updateScene(self._model, data, self._opt, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        z = np.empty((self.height, self.width), dtype=np.float32) if depth else None
        mujoco.mjr_readPixels(rgb, z, self._rect, self._ctx)
        rgb = np.ascontiguousarray(np.flipud(rgb))
        if z is not None:
            z = np.ascontiguousarray(np.flipud(self._metric_depth(z)))
        return rgb, z

    def _metric_depth(self, z: np.ndarray) -> np.ndarray:
        """Reverse-Z buffer -> metres (mujoco.Renderer's conversion, perspective cameras)."""
        extent = self._model.stat.extent
        znear = np.float32(self._model.vis.map.znear * extent)
        zfar = np.float32(self._model.vis.map.zfar * extent)
        c = -(zfar + znear) / (zfar - znear)
        d = -(np.float32(2) * zfar * znear) / (zfar - znear)
        c, d = np.float32(-0.5) * c - np.float32(0.5), np.float32(-0.5) * d
        out = (d / (z.astype(np.float64) + c)).astype(np.float32)
        out[out >= zfar * 0.99] = 0.0
        return out

    def close(self):
        if self._ctx is not None and self._gl is not None:
            self._gl.make_current()
            self._ctx.free()
        self._ctx = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
        self._model = None
