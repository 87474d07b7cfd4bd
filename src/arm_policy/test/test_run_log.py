"""arm_policy.run_log: metrics.csv, TensorBoard event files, config.json, summary.json."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import struct
import sys

import numpy as np
import pytest
import torch

from arm_policy.run_log import (
    RunLogger,
    _crc32c,
    _masked_crc,
    read_event_scalars,
    read_json,
    read_metrics,
    write_config,
    write_summary,
)


def test_crc32c_known_values():
    # RFC 3720 / iSCSI check value, and the masked form TFRecord uses
    assert _crc32c(b"123456789") == 0xE3069283
    assert _crc32c(b"") == 0
    assert _masked_crc(b"") == 0xA282EAD8


def test_csv_rows_new_columns_and_event_file(tmp_path):
    with RunLogger(tmp_path) as log:
        log.log(100, env_steps=100, loss_q=0.5, alpha=np.float32(0.2))
        log.log(200, env_steps=200, loss_q=torch.tensor(0.25))
        # a new key appears later: the header is extended, old rows keep empty cells
        log.log(200, env_steps=200, eval_success=0.4, **{"eval/return": 12.0})
        log.log(300, env_steps=300, loss_q=float("nan"), done=True)
        with pytest.raises(TypeError, match="loss_q"):
            log.log(400, loss_q=torch.ones(3))
        with pytest.raises(ValueError, match="reserved"):
            log.log(400, step=3)

    with open(tmp_path / "metrics.csv", newline="") as f:
        raw = list(csv.reader(f))
    assert raw[0] == ["step", "wall_time", "env_steps", "loss_q", "alpha", "eval_success",
                      "eval/return", "done"]
    assert len(raw) == 5 and all(len(r) == len(raw[0]) for r in raw)
    assert raw[1][2:] == ["100", "0.5", repr(float(np.float32(0.2))), "", "", ""]

    rows = read_metrics(tmp_path)  # folder or file
    assert [r["step"] for r in rows] == [100, 200, 200, 300]
    assert rows[0]["loss_q"] == 0.5 and "eval_success" not in rows[0]
    assert rows[1]["loss_q"] == 0.25
    assert rows[2]["eval_success"] == pytest.approx(0.4) and rows[2]["eval/return"] == 12.0
    assert math.isnan(rows[3]["loss_q"]) and rows[3]["done"] == 1.0
    assert all(r["wall_time"] > 1e9 for r in rows)

    scalars = read_event_scalars(tmp_path / "tensorboard")
    assert scalars["env_steps"] == [(100, 100.0), (200, 200.0), (200, 200.0), (300, 300.0)]
    assert scalars["loss_q"][:2] == [(100, 0.5), (200, 0.25)]
    assert math.isnan(scalars["loss_q"][2][1])
    assert scalars["eval_success"] == [(200, pytest.approx(0.4))]
    assert scalars["eval/return"] == [(200, 12.0)]
    assert scalars["alpha"] == [(100, pytest.approx(0.2))]


def test_resume_appends_and_survives_partial_last_line(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log(1, a=1.0, b=2.0)
    # simulate a crash mid-row
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("2,17000")
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log(3, a=3.0)
        log.log(4, a=4.0, c=5.0)
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 3, 4]
    assert rows[1] == {"step": 3, "wall_time": rows[1]["wall_time"], "a": 3.0}
    assert rows[2]["c"] == 5.0
    assert not (tmp_path / "tensorboard").exists()


def test_event_file_framing_is_checked(tmp_path):
    with RunLogger(tmp_path) as log:
        log.log(1, x=1.0)
        log.log(2, x=2.0)
    (ev,) = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    data = ev.read_bytes()
    # first record: 8-byte length, masked crc of it, payload, masked crc of payload
    (n,) = struct.unpack("<Q", data[:8])
    assert struct.unpack("<I", data[8:12])[0] == _masked_crc(data[:8])
    assert struct.unpack("<I", data[12 + n:16 + n])[0] == _masked_crc(data[12:12 + n])
    # a truncated tail (writer killed) is tolerated: complete records still read back
    ev.write_bytes(data[:-3])
    assert read_event_scalars(ev)["x"] == [(1, 1.0)]
    # a flipped payload byte is an error, not silently wrong data
    bad = bytearray(data)
    bad[-6] ^= 0xFF
    ev.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="CRC"):
        read_event_scalars(ev)


@dataclasses.dataclass
class Cfg:
    task: str = "reach_target"
    batch_size: int = 128
    crop: tuple = (16, 16)
    lr: float = 1e-3

    def to_dict(self):
        return dataclasses.asdict(self)


def test_write_config(tmp_path):
    path = write_config(tmp_path, Cfg())
    assert path == tmp_path / "config.json"
    rec = read_json(path)
    assert rec["config"] == {"task": "reach_target", "batch_size": 128, "crop": [16, 16],
                             "lr": 1e-3}
    assert rec["argv"] == sys.argv and sys.argv[0] in rec["command"]
    assert rec["torch"] == torch.__version__
    # this test runs inside the project's git checkout
    assert rec["git"] is not None and len(rec["git"]["commit"]) == 40
    assert isinstance(rec["git"]["dirty"], bool)
    write_config(tmp_path, {"a": np.int64(3), "p": tmp_path, "arr": np.arange(2)})
    assert read_json(path)["config"] == {"a": 3, "p": str(tmp_path), "arr": [0, 1]}
    assert not list(tmp_path.glob(".*tmp"))


def test_write_summary_merges_atomically(tmp_path):
    write_summary(tmp_path, best_eval_success=0.5, env_steps=1000)
    path = write_summary(tmp_path, best_eval_success=0.75, final=True,
                         success=np.float64(0.75), loss=float("nan"))
    s = json.loads(path.read_text())
    assert s["best_eval_success"] == 0.75 and s["env_steps"] == 1000 and s["final"] is True
    assert s["success"] == 0.75 and s["loss"] == "nan" and "updated" in s
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    s = json.loads(write_summary(tmp_path, forget=("final", "absent"), env_steps=2000).read_text())
    assert "final" not in s and s["env_steps"] == 2000 and s["best_eval_success"] == 0.75


def test_a_resumed_run_that_ends_normally_is_no_longer_marked_interrupted(tmp_path):
    """The first attempt was stopped (summary.json: interrupted); the resumed one ran to its end.
    A benchmark reads the flag: a stale one left the finished cell out of the report and resumed."""
    from arm_policy.benchmark_report import finished
    from arm_policy.training_run import TrainingRun

    stopped = TrainingRun(tmp_path, minutes=1)
    stopped.interrupted = True
    with pytest.raises(KeyboardInterrupt):
        stopped.finish({"task": "stack_wine"}, updates=10)
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True
    assert finished(tmp_path) is None

    summary = TrainingRun(tmp_path, minutes=1).finish({"task": "stack_wine", "eval_success": 0.5}, updates=20)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert "interrupted" not in summary and "interrupted" not in on_disk and on_disk["updates"] == 20
    assert finished(tmp_path)["eval_success"] == 0.5
