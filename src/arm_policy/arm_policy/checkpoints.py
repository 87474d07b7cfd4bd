"""Atomic training checkpoints in a run folder.

Layout: ``run_dir/checkpoints/step_{step:09d}.pt``, one ``torch.save`` zip file per checkpoint
holding ``{"format": "arm_checkpoint", "version": 1, "step": step, "state": state}``.

Guarantees
----------
* A file under a final name is always complete: it is written to a hidden temp file in the same
  directory (``.step_000000042.pt.<pid>.tmp``), flushed and fsynced, ``os.replace``-d onto the
  final name, and then the directory is fsynced. A writer killed mid-write leaves at most a temp
  file, which no reader looks at and the next ``save_checkpoint`` removes once its writer is gone.
* Loading never unpickles arbitrary code: ``torch.load(weights_only=True)`` (torch 2.13's default
  too, stated explicitly here). Allowed content is what model/optimizer ``state_dict()`` s and
  config ``to_dict()`` s are made of: tensors, dicts (incl. OrderedDict), lists, tuples, str, int,
  float, bool, None, torch.dtype / torch.device. ``save_checkpoint`` checks this up front and
  converts numpy scalars to Python scalars; numpy arrays and other objects raise ``TypeError``
  naming their key path (use ``torch.as_tensor``), so a checkpoint that could not be loaded back
  is never written.
* Every way a file can be bad (missing, empty, truncated, bit-flipped, not a checkpoint) makes
  ``load_checkpoint`` raise ``CheckpointError`` naming the file. Bit flips are caught by checking
  the zip members' CRC-32s, which ``torch.load`` itself does not verify.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from arm_perception.bag_writer import fsync_dir

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "atomic_write",
    "atomic_write_bytes",
    "checkpoint_dir",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_valid",
    "save_checkpoint",
    "step_of",
]

CHECKPOINT_SUBDIR = "checkpoints"
FORMAT = "arm_checkpoint"
VERSION = 1
_NAME_RE = re.compile(r"^step_(\d{9,})\.pt$")
_TMP_RE = re.compile(r"^\.step_\d+\.pt\.(\d+)\.[^.]+\.tmp$")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not one of ours. ``path`` names it."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class LoadedCheckpoint(NamedTuple):
    path: Path
    step: int
    state: dict


# --------------------------------------------------------------------------- atomic files


def atomic_write(path: os.PathLike | str, write, tmp_prefix: str | None = None) -> Path:
    """Write ``path`` atomically: ``write(fileobj)`` fills a temp file in the same directory,
    which is flushed, fsynced and renamed over ``path``; the directory is fsynced after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = tmp_prefix if tmp_prefix is not None else f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: os.PathLike | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace + directory fsync)."""
    return atomic_write(path, lambda f: f.write(data))


# --------------------------------------------------------------------------- paths


def checkpoint_dir(run_dir: os.PathLike | str) -> Path:
    return Path(run_dir) / CHECKPOINT_SUBDIR


def checkpoint_path(run_dir: os.PathLike | str, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{int(step):09d}.pt"


def list_checkpoints(run_dir: os.PathLike | str) -> list[Path]:
    """Final checkpoint files of ``run_dir``, oldest step first (temp files are never listed)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _NAME_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: os.PathLike | str) -> Path | None:
    """The checkpoint with the highest step, or None. It is not opened: see load_latest_valid."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def step_of(path: Path) -> int | None:
    """The step in a checkpoint file's name (None for another name)."""
    m = _NAME_RE.match(path.name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- save


_PLAIN = (str, int, float, bool, type(None), torch.dtype, torch.device)


def _sanitise(obj: Any, where: str) -> Any:
    """Check ``obj`` only holds types torch.load(weights_only=True) accepts; numpy scalars ->
    Python scalars. Raises TypeError naming the key path of the first bad value."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (dict, OrderedDict)):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"checkpoint state{where}: key {k!r} of type {type(k).__name__} "
                                "is not a str/int/float/bool/None")
            out[k] = _sanitise(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_sanitise(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, np.ndarray):
        raise TypeError(f"checkpoint state{where}: numpy array; store torch.as_tensor(x) instead "
                        "(checkpoints are loaded with weights_only=True)")
    raise TypeError(f"checkpoint state{where}: {type(obj).__module__}.{type(obj).__qualname__} "
                    "cannot be loaded with weights_only=True; store tensors and plain values "
                    "(e.g. dataclass -> to_dict())")


def _remove_orphan_temps(directory: Path) -> None:
    """Delete temp files left by checkpoint writers that are no longer running."""
    for p in directory.iterdir():
        m = _TMP_RE.match(p.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            alive = False  # our own earlier attempt (a failed save cleans up; this is a leftover)
        else:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except OSError:  # exists, but not ours to signal
                alive = True
        if not alive:
            with contextlib.suppress(OSError):
                p.unlink()


def save_checkpoint(run_dir: os.PathLike | str, step: int, state: dict,
                    keep_last: int | None = 5) -> Path:
    """Atomically write ``state`` as ``run_dir/checkpoints/step_{step:09d}.pt``; then delete all
    but the newest ``keep_last`` checkpoints (None keeps all). Returns the path written.

    ``state`` is typically ``{"agent": agent.state_dict(), "config": config.to_dict(), ...}``.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep_last is not None and int(keep_last) < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    payload = {"format": FORMAT, "version": VERSION, "step": step,
               "state": _sanitise(state, "")}
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphan_temps(path.parent)
    atomic_write(path, lambda f: torch.save(payload, f),
                  tmp_prefix=f".{path.name}.{os.getpid()}.")
    if keep_last is not None:
        for old in list_checkpoints(run_dir)[:-int(keep_last)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        fsync_dir(path.parent)
    return path


# --------------------------------------------------------------------------- load


def load_checkpoint(path: os.PathLike | str, map_location: Any = "cpu", *,
                    verify: bool = True) -> dict:
    """Load the ``state`` dict saved by save_checkpoint (tensors on ``map_location``).

    Raises CheckpointError naming ``path`` if it is missing, empty, truncated, corrupt
    (zip CRC mismatch when ``verify``), not loadable with weights_only=True, or not ours.
    """
    return _load(Path(path), map_location, verify).state


def _load(path: Path, map_location: Any, verify: bool) -> LoadedCheckpoint:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(path, "file does not exist") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None
    if not data:
        raise CheckpointError(path, "file is empty")
    buf = io.BytesIO(data)
    if verify:
        try:
            with zipfile.ZipFile(buf) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise CheckpointError(path, f"truncated or not a torch.save zip file "
                                        f"({len(data)} bytes; {e})") from None
        except Exception as e:  # zlib errors and the like: still a corrupt file
            raise CheckpointError(path, f"corrupt zip archive ({type(e).__name__}: {e})") from None
        if bad is not None:
            raise CheckpointError(path, f"corrupt: CRC mismatch in archive member {bad!r}")
        buf.seek(0)
    try:
        payload = torch.load(buf, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling/zip failure means a bad file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"cannot be loaded ({type(e).__name__}: {msg[:300]})") from None
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT
            and isinstance(payload.get("state"), dict)):
        raise CheckpointError(path, "not an arm_checkpoint file (no format/state fields)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(path, f"written by a newer format version {payload['version']} "
                                    f"(this code reads <= {VERSION})")
    step = payload.get("step")
    if not isinstance(step, int):
        step = step_of(path) if step_of(path) is not None else -1
    return LoadedCheckpoint(path, step, payload["state"])


def load_latest_valid(run_dir: os.PathLike | str, map_location: Any = "cpu", *,
                      verify: bool = True) -> LoadedCheckpoint | None:
    """The newest checkpoint of ``run_dir`` that loads: ``LoadedCheckpoint(path, step, state)``
    (a NamedTuple), or None if there is none. Each newer file that fails to load is skipped with
    a ``warnings.warn`` naming it and why (it is not deleted: a person may want to look at it)."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return _load(path, map_location, verify)
        except CheckpointError as e:
            warnings.warn(f"skipping unreadable checkpoint: {e}", RuntimeWarning, stacklevel=2)
    return None
