"""Shared pieces of the sim_train tests: a tiny configuration, the launch as a watched process,
the processes it must not leave behind, and the decisions recorded in its bags."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from graph_helpers import node_processes as graph_processes

#: executables of the sim_train graph (to prove none outlives the launch)
NODES = (b"sim_node", b"perception_node", b"control_node", b"recorder", b"training_node",
         b"policy_node", b"episode_runner")

#: A sim_train that closes the loop in a few minutes on 2 cores: 32x32 images, a small batch,
#: one torch thread for the trainer (two fight the actor's processes for the cores), 2 demos,
#: 3-pose episodes, frequent checkpoints and reloads, an evaluation every 6 env steps, and
#: reach_target (one keyframe: its demos and episodes are the shortest) instead of the main job's task.
TINY = [
    "task:=reach_target", "image_size:=32", "demos:=2", "episode_length:=3", "eval_every:=6", "eval_episodes:=2",
    "episode_runner.preset:=",  # the agent's size comes from agent_overrides below
    "training_node.agent_overrides:=[image_size=32, batch_size=8]",
    "training_node.torch_threads:=1", "training_node.checkpoint_every:=5",
    "training_node.poll_period:=0.5",
    "policy_node.reload_every:=5", "policy_node.reload_period:=1.0",
]


class Launch:
    """``arm launch sim_train ...`` in its own ROS domain and process group; lines collected."""

    def __init__(self, domain: str, run_dir: Path, *args: str, log: Path | None = None) -> None:
        env = {**os.environ, "ROS_DOMAIN_ID": domain, "PYTHONUNBUFFERED": "1"}
        self.log = log or run_dir.parent / f"{run_dir.name}.launch.log"
        self.proc = subprocess.Popen(
            [shutil.which("arm"), "launch", "sim_train", f"run_dir:={run_dir}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env=env, start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with open(self.log, "w") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; "
                                         f"launch log: {self.log}\n" + "\n".join(self.lines[-60:]))
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the launch did not end by itself within {timeout} s; "
                                 f"launch log: {self.log}\n" + "\n".join(self.lines[-60:]))
        self._thread.join(timeout=5)
        return rc

    def stop(self) -> None:
        """Ctrl-C, then kill the whole group (cleanup after a failed test)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._thread.join(timeout=5)


def node_processes(domain: str) -> list[int]:
    """PIDs of sim_train node executables running in ``domain``."""
    return graph_processes(domain, NODES, exact=True)


def recorded_decisions(bag_root: Path) -> list[dict]:
    """Every ``/arm/policy/decision`` JSON in the closed bags under ``bag_root``, by stamp."""
    from rosbags.rosbag2 import Reader

    from arm_control.topics import TOPIC_DECISION
    from arm_perception.bag_codec import TYPESTORE
    from arm_perception.bag_reader import is_bag_dir

    out = []
    for meta in sorted(bag_root.rglob("metadata.yaml")):
        bag = meta.parent
        if not is_bag_dir(bag):
            continue
        with Reader(bag) as reader:
            conns = [c for c in reader.connections if c.topic == TOPIC_DECISION]
            for conn, _, raw in reader.messages(connections=conns):
                msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
                out.append({**json.loads(msg.data), "bag": str(bag.relative_to(bag_root))})
    return sorted(out, key=lambda d: d["stamp_ns"])


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))
