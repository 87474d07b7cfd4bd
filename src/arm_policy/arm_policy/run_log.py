"""Run-folder logging: metrics.csv, TensorBoard event files, config.json, summary.json.

Run folder layout (shared with arm_policy.checkpoints)::

    run_dir/
      config.json        write_config: the config + git commit + command line (reproducibility)
      metrics.csv        RunLogger: one row per log() call
      tensorboard/       RunLogger: events.out.tfevents.* (open with `tensorboard --logdir run_dir`)
      checkpoints/       arm_policy.checkpoints
      summary.json       write_summary: final/best numbers, rewritten atomically

metrics.csv is WIDE: columns ``step,wall_time,<metric>...``; one row per ``log(step, **scalars)``;
a metric a row does not have is an empty cell. Wide was chosen over long (step,name,value) because
it opens directly in a spreadsheet/pandas and ``read_metrics`` rows feed ``plots.
plot_learning_curve`` as they are. When a later row brings a new key, the file is rewritten once
with the extended header (atomically: temp file + os.replace), so the header always names every
column; this is rare (metric sets are fixed after the first eval) and cheap at our sizes.
Rows are flushed as they are written; a partial last line left by a crash is ignored on read and
terminated before the next append.

TensorBoard: written with ``tensorboardX`` (pinned in requirements.txt; pure Python on top of
protobuf, no TensorFlow/tensorboard needed to write). If it is missing, RunLogger warns once and
keeps writing the CSV. ``read_event_scalars`` reads event files back without tensorboard (TFRecord
framing with masked CRC-32C checks + protobuf Event parsing), for tests and scripts.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
import math
import numbers
import os
import platform
import shlex
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .checkpoints import atomic_write_bytes

__all__ = [
    "RunLogger",
    "read_event_scalars",
    "read_metrics",
    "git_info",
    "write_config",
    "write_summary",
    "read_json",
]

METRICS_FILE = "metrics.csv"
TENSORBOARD_SUBDIR = "tensorboard"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
_FIXED = ("step", "wall_time")


def _scalar(name: str, value: Any) -> float:
    """A float from a Python/numpy/torch scalar (0-d or one-element tensors too)."""
    if isinstance(value, numbers.Real):  # bool, int, float, numpy scalars
        return float(value)
    if hasattr(value, "item"):  # 0-d / one-element numpy arrays and torch tensors
        try:
            return float(value.item())
        except (ValueError, RuntimeError, TypeError):
            pass
    raise TypeError(f"metric {name!r}: {type(value).__name__} is not a scalar")


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class RunLogger:
    """Append scalar metrics to ``run_dir/metrics.csv`` and TensorBoard event files.

    >>> log = RunLogger(run_dir)
    >>> log.log(1000, env_steps=1000, loss_q=0.3, eval_success=0.25)
    >>> log.close()   # or use it as a context manager

    Re-opening an existing run folder (resume) keeps the rows already there and appends.
    Tags are used as given in TensorBoard ("train/loss_q" groups under "train").
    """

    def __init__(self, run_dir: os.PathLike | str, *, tensorboard: bool = True,
                 flush_secs: float = 10.0):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / METRICS_FILE
        self.tb_dir = self.run_dir / TENSORBOARD_SUBDIR
        self._columns: list[str] = []
        self._fh: io.TextIOWrapper | None = None
        self._open_csv()
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                warnings.warn("tensorboardX is not installed: RunLogger writes metrics.csv only "
                              "(pip install -r requirements.txt)", RuntimeWarning, stacklevel=2)
            else:
                self.tb_dir.mkdir(parents=True, exist_ok=True)
                self._tb = SummaryWriter(logdir=str(self.tb_dir), flush_secs=flush_secs)

    # ----------------------------------------------------------------- csv
    def _open_csv(self) -> None:
        if self.csv_path.exists() and self.csv_path.stat().st_size > 0:
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), [])
            self._columns = [c for c in header if c]
            with open(self.csv_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                ends_clean = f.read(1) == b"\n"
            self._fh = open(self.csv_path, "a", newline="")
            if not ends_clean:  # partial row from a crash: end it so the next row is intact
                self._fh.write("\n")
                self._fh.flush()
        else:
            self._fh = None  # created with the first row's header

    def _rewrite_with_columns(self, columns: list[str]) -> None:
        rows = read_metrics(self.csv_path, numeric=False) if self.csv_path.exists() else []
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
        if self._fh is not None:
            self._fh.close()
        atomic_write_bytes(self.csv_path, buf.getvalue().encode())
        self._columns = columns
        self._fh = open(self.csv_path, "a", newline="")

    def log(self, step: int, /, **scalars: Any) -> dict[str, float]:
        """Record ``scalars`` (name -> number) at ``step`` in both sinks; returns the floats."""
        step = int(step)
        values = {k: _scalar(k, v) for k, v in scalars.items()}
        for k in values:
            if k in _FIXED:
                raise ValueError(f"metric name {k!r} is reserved")
        new = [k for k in values if k not in self._columns]
        if new or self._fh is None:
            cols = self._columns or list(_FIXED)
            self._rewrite_with_columns(cols + [k for k in new if k not in cols])
        row = {"step": str(step), "wall_time": f"{time.time():.3f}"}
        row.update({k: _fmt(v) for k, v in values.items()})
        csv.writer(self._fh, lineterminator="\n").writerow(
            [row.get(c, "") for c in self._columns])
        self._fh.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, global_step=step)
        return values

    def log_image(self, step: int, tag: str, image: np.ndarray) -> None:
        """An (H, W, 3) uint8 RGB image (e.g. plots.heatmap_image) to TensorBoard only."""
        if self._tb is not None:
            self._tb.add_image(tag, np.asarray(image), global_step=int(step), dataformats="HWC")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: os.PathLike | str, *, numeric: bool = True) -> list[dict]:
    """Rows of a metrics.csv (or of ``run_dir/metrics.csv`` given a folder) as dicts.

    With ``numeric`` values are floats (``step`` an int) and empty cells are left out, so
    ``"eval_success" in row`` tells whether that row has it. Malformed rows (a crash's partial
    last line) are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows: list[dict] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return rows
        for rec in reader:
            if len(rec) != len(header):
                continue
            if not numeric:
                rows.append(dict(zip(header, rec)))
                continue
            try:
                row = {h: (int(v) if h == "step" else float(v))
                       for h, v in zip(header, rec) if v != ""}
            except ValueError:
                continue
            if "step" in row:
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- event reader

def _make_crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecords(path: Path) -> Iterable[bytes]:
    """Records of a TFRecord file: u64 length, masked crc32c(length), data, masked crc32c(data).
    A truncated tail (writer still running or killed) ends the iteration; a CRC mismatch raises."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return
            (length,) = struct.unpack("<Q", head[:8])
            (len_crc,) = struct.unpack("<I", head[8:])
            if _masked_crc(head[:8]) != len_crc:
                raise ValueError(f"{path}: bad length CRC at offset {f.tell() - 12}")
            data = f.read(length)
            tail = f.read(4)
            if len(data) < length or len(tail) < 4:
                return
            if _masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise ValueError(f"{path}: bad data CRC at offset {f.tell() - length - 4}")
            yield data


def read_event_scalars(path: os.PathLike | str) -> dict[str, list[tuple[int, float]]]:
    """Scalars in a TensorBoard event file, or in all ``events.out.tfevents.*`` under a folder
    (e.g. ``run_dir/tensorboard``): ``{tag: [(step, value), ...]}`` in file order.
    Needs only protobuf (tensorboardX's generated Event class), not tensorboard."""
    from tensorboardX.proto.event_pb2 import Event

    path = Path(path)
    files = sorted(path.rglob("events.out.tfevents.*")) if path.is_dir() else [path]
    out: dict[str, list[tuple[int, float]]] = {}
    for fp in files:
        for rec in _tfrecords(fp):
            ev = Event()
            ev.ParseFromString(rec)
            if not ev.HasField("summary"):
                continue
            for v in ev.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((int(ev.step), float(v.simple_value)))
                elif v.HasField("tensor") and v.tensor.float_val:
                    out.setdefault(v.tag, []).append((int(ev.step), float(v.tensor.float_val[0])))
    return out


# --------------------------------------------------------------------------- config / summary

def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool, type(None))):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else str(f)  # strict JSON has no NaN/inf
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if hasattr(obj, "item") and hasattr(obj, "numel") and obj.numel() == 1:  # torch scalar
        return _jsonable(obj.item())
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return str(obj)  # Path, Enum, torch.device, ...


def _write_json(path: Path, obj: Any) -> Path:
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_json(path: os.PathLike | str) -> dict:
    with open(path) as f:
        return json.load(f)


def git_info(where: os.PathLike | str | None = None) -> dict | None:
    """``{"commit", "dirty", "branch"}`` of the git work tree holding ``where`` (default: this
    source file, i.e. the project's checkout), or None when git or the repo is unavailable."""
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    if cwd.is_file():
        cwd = cwd.parent

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                               timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def write_config(run_dir: os.PathLike | str, config_dict: Any) -> Path:
    """Write ``run_dir/config.json``: ``{"config": ..., "git": {...} | null, "command": ...,
    "argv": [...], "cwd", "python", "torch", "platform", "host", "created"}``.

    ``config_dict`` may be a dict or a dataclass (``to_dict()`` is used when it has one).
    Written atomically; returns its path. ``read_json(path)["config"]`` gives the config back.
    """
    try:  # without importing torch where nothing has (`arm launch` writes run configs too)
        from importlib.metadata import version

        torch_version = sys.modules["torch"].__version__ if "torch" in sys.modules else version("torch")
    except Exception:  # noqa: BLE001 - pragma: no cover, torch not installed
        torch_version = None
    record = {
        "config": config_dict,
        "git": git_info(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "torch": torch_version,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return _write_json(Path(run_dir) / CONFIG_FILE, record)


def write_summary(run_dir: os.PathLike | str, *, forget: Iterable[str] = (), **fields: Any) -> Path:
    """Merge ``fields`` into ``run_dir/summary.json`` (created if missing) and rewrite it
    atomically, with ``updated`` set to the current UTC time. Returns its path.

    Merging lets the trainer record e.g. ``best_eval_success`` as it goes and the final numbers
    at the end; pass a field again to replace it. Keys in ``forget`` are removed first (what an
    earlier attempt of a resumed run left, such as its ``interrupted``)."""
    path = Path(run_dir) / SUMMARY_FILE
    current: dict = {}
    if path.exists():
        try:
            current = read_json(path)
        except (OSError, ValueError):
            current = {}
    for key in forget:
        current.pop(key, None)
    current.update(fields)
    current["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return _write_json(path, current)
