"""arm_policy.checkpoints: atomic save, pruning, corruption handling, fallback to the last good."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from arm_policy.checkpoints import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_valid,
    save_checkpoint,
)


def make_state(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(3, 4, generator=g)).sum().backward()
    opt.step()
    return {
        "agent": {"qattention": net.state_dict(), "optim": opt.state_dict(),
                  "log_alpha": torch.tensor(-0.3), "updates": 17},
        "config": {"batch_size": 128, "gamma": 0.99, "task": "reach_target", "crop": [16, 16],
                   "prioritised": True, "note": None},
        "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2, 3), None)},
        "np_scalar": np.float32(2.5),
    }


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b, (a, b)


def test_round_trip(tmp_path):
    state = make_state()
    path = save_checkpoint(tmp_path, 42, state)
    assert path == tmp_path / "checkpoints" / "step_000000042.pt" and path.is_file()
    loaded = load_checkpoint(path)
    expected = dict(state, np_scalar=2.5)  # numpy scalars come back as Python scalars
    assert_same(expected, loaded)
    assert isinstance(loaded["agent"]["qattention"], OrderedDict)
    # loads straight back into modules
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net.load_state_dict(loaded["agent"]["qattention"])
    got = load_latest_valid(tmp_path)
    assert got is not None and got.path == path and got.step == 42
    assert_same(expected, got.state)
    # no temp files left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["step_000000042.pt"]


def test_keep_last_prunes_and_latest(tmp_path):
    assert latest_checkpoint(tmp_path) is None and load_latest_valid(tmp_path) is None
    for step in [5, 10, 1000, 15, 20, 25, 30]:
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, keep_last=3)
    names = [p.name for p in list_checkpoints(tmp_path)]
    # pruning is by step number, not by write order
    assert names == ["step_000000025.pt", "step_000000030.pt", "step_000001000.pt"]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 1000)
    save_checkpoint(tmp_path, 2000, {"w": torch.zeros(1)}, keep_last=None)
    assert len(list_checkpoints(tmp_path)) == 4


def test_rejects_state_that_would_not_load_back(tmp_path):
    with pytest.raises(TypeError, match=r"\['agent'\]\['buf'\].*numpy array"):
        save_checkpoint(tmp_path, 1, {"agent": {"buf": np.zeros(3)}})
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path, 1, {"cfg": object()})
    assert list_checkpoints(tmp_path) == []


def test_missing_empty_garbage_and_bitflip_raise_checkpoint_error(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt.*does not exist"):
        load_checkpoint(missing)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt.*empty"):
        load_checkpoint(empty)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04not a zip at all" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    # a flipped byte inside tensor data: torch.load alone would not notice
    path = save_checkpoint(tmp_path, 1, {"w": torch.arange(4096, dtype=torch.float32)})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"step_000000001\.pt.*CRC"):
        load_checkpoint(path)
    # a torch file that is not one of ours
    foreign = tmp_path / "foreign.pt"
    torch.save({"w": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt.*not an arm_checkpoint"):
        load_checkpoint(foreign)


def test_truncated_newest_falls_back_with_warning(tmp_path):
    save_checkpoint(tmp_path, 100, {"w": torch.full((1000,), 1.0)})
    newest = save_checkpoint(tmp_path, 200, {"w": torch.full((1000,), 2.0)})
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(newest)
    assert "step_000000200.pt" in str(ei.value) and "truncated" in str(ei.value)
    assert ei.value.path == newest
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
    with pytest.warns(RuntimeWarning, match="step_000000200.pt"):
        got = load_latest_valid(tmp_path)
    assert got.step == 100 and torch.equal(got.state["w"], torch.full((1000,), 1.0))
    # all bad -> None, one warning each
    (tmp_path / "checkpoints" / "step_000000100.pt").write_bytes(b"PK\x03\x04junk")
    with pytest.warns(RuntimeWarning) as rec:
        assert load_latest_valid(tmp_path) is None
    assert len(rec) == 2


CHILD = textwrap.dedent(
    """
    import sys, time, torch
    from arm_policy import checkpoints
    run_dir = sys.argv[1]
    checkpoints.save_checkpoint(run_dir, 1, {"w": torch.full((1000,), 1.0)})

    real_save = torch.save

    class SlowFile:
        # forwards to the real temp file, then stalls once half a megabyte is on disk
        def __init__(self, f):
            self.f, self.n, self.told = f, 0, False
        def write(self, b):
            n = self.f.write(b)
            self.n += len(b)
            if self.n > 500_000 and not self.told:
                self.f.flush()
                self.told = True
                print("WRITING", flush=True)
                time.sleep(60)
            return n
        def flush(self):
            self.f.flush()
        def __getattr__(self, name):
            return getattr(self.f, name)

    torch.save = lambda obj, f: real_save(obj, SlowFile(f))
    checkpoints.save_checkpoint(run_dir, 2, {"w": torch.zeros(2_000_000)})  # 8 MB
    print("FINISHED", flush=True)
    """
)


def test_writer_killed_mid_write_leaves_previous_loadable(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "WRITING", line
        ckdir = tmp_path / "checkpoints"
        temps = [p for p in ckdir.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].stat().st_size > 500_000  # really mid-write
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert not checkpoint_path(tmp_path, 2).exists()  # no half file under a final name
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 1)
    got = load_latest_valid(tmp_path)
    assert got.step == 1 and torch.equal(got.state["w"], torch.full((1000,), 1.0))
    # the orphaned temp file is cleaned up by the next save (its writer is dead)
    assert any(p.name.endswith(".tmp") for p in (tmp_path / "checkpoints").iterdir())
    save_checkpoint(tmp_path, 3, {"w": torch.zeros(1)})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_000000001.pt", "step_000000003.pt"]


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(1)})

    def boom(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, {"w": torch.ones(1)})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000000001.pt"]


def test_map_location_and_str_path(tmp_path):
    path = save_checkpoint(str(tmp_path), 7, {"w": torch.ones(3)})
    out = load_checkpoint(str(path), map_location=torch.device("cpu"))
    assert out["w"].device.type == "cpu"
    assert isinstance(path, Path)
