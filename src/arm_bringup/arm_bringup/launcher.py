"""Run a node list, each node in its own process: the engine of ``arm launch``.

What ``ros2 launch`` does for a list of ``launch_ros`` Nodes, for machines without ``launch``:

* every :class:`~arm_bringup.nodes.NodeSpec` runs as
  ``<prefix>/lib/<package>/<executable> --ros-args -r __node:=NAME --params-file FILE
  -p k:=v -r from:=to`` where ``<prefix>`` is the first entry of ``AMENT_PREFIX_PATH`` that has
  the executable (then ``<workspace>/install/<package>``); a missing executable is reported, by
  node, before anything starts (exit code 2);
* each line a node prints (stdout and stderr) is printed as ``[NAME] line``;
* each node is the leader of its own process group (``start_new_session``): signals go to the
  whole group, so whatever a node starts dies with it, and a Ctrl-C in the terminal reaches the
  launcher only, which forwards it; each node also gets ``PR_SET_PDEATHSIG`` = SIGTERM, so even a
  SIGKILLed launcher takes its nodes along;
* SIGINT/SIGTERM/SIGHUP to the launcher, or the exit of any node without ``respawn``, stop the
  rest: SIGINT to every group, after ``sigint_timeout`` SIGTERM, after ``sigterm_timeout``
  SIGKILL (a second Ctrl-C skips to the next step). A node with ``respawn`` is restarted after
  ``respawn_delay`` seconds instead, at most ``respawn_max_retries`` times (-1: always, as
  launch_ros), and never after exit code 2 (our nodes' "bad parameter": a restart would fail
  the same way); then its exit stops the rest like any other node's.

Exit code (:func:`run`): 0 when the launch was stopped on request and every node stopped on
SIGINT, or when the first node to exit exited with 0; ``10 + i`` when node ``i`` of the list (0-based) is
to blame: it exited on its own with a non-zero code (a crash; printed as ``[launch] NAME exited
with code N; stopping the rest``), or it did not stop on SIGINT within the timeout, or ended
with an error code while being stopped; 2 when nothing could start.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from arm_bringup.nodes import NodeSpec
from arm_bringup.params_files import to_text

__all__ = [
    "EXIT_NODE_BASE",
    "EXIT_OK",
    "EXIT_USAGE",
    "ExecutableNotFound",
    "command_line",
    "find_executable",
    "run",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NODE_BASE = 10

#: Exit codes that count as a clean stop after SIGINT/SIGTERM from the launcher.
_CLEAN_STOP_CODES = {0, -signal.SIGINT, 128 + signal.SIGINT, -signal.SIGTERM,
                     128 + signal.SIGTERM}

WORKSPACE = Path(__file__).resolve().parents[3]


class ExecutableNotFound(FileNotFoundError):
    """A node's executable is in no install prefix."""


# ----------------------------------------------------------------------------- command lines

def _prefixes() -> list[Path]:
    out = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return out


def find_executable(spec: NodeSpec) -> Path:
    """``<prefix>/lib/<package>/<executable>`` of the first prefix that has it."""
    candidates = [p / "lib" / spec.package / spec.executable for p in _prefixes()]
    candidates.append(WORKSPACE / "install" / spec.package / "lib" / spec.package / spec.executable)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ExecutableNotFound(
        f"node {spec.name}: executable {spec.executable!r} of package {spec.package!r} not found "
        f"(looked for {candidates[-1]} and lib/{spec.package}/{spec.executable} under "
        f"AMENT_PREFIX_PATH); build it with `colcon build --symlink-install` and `source env.sh`"
    )


def command_line(spec: NodeSpec, executable: str | os.PathLike[str] | None = None) -> list[str]:
    """The argv that runs ``spec``."""
    exe = str(executable) if executable is not None else str(find_executable(spec))
    argv = [exe, "--ros-args", "-r", f"__node:={spec.name}"]
    for path in spec.params_files:
        argv += ["--params-file", str(path)]
    for key, value in spec.parameters.items():
        argv += ["-p", f"{key}:={to_text(value)}"]
    for src, dst in spec.remappings:
        argv += ["-r", f"{src}:={dst}"]
    return argv


# ----------------------------------------------------------------------------- processes

if sys.platform.startswith("linux"):
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
    _PR_SET_PDEATHSIG = 1

    def _child_setup(parent_pid: int) -> None:  # runs in the child between fork and exec
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the launcher died before prctl took effect
            os._exit(1)
else:  # pragma: no cover
    _child_setup = None  # type: ignore[assignment]


def _proc_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    if not os.path.isdir("/proc"):  # pragma: no cover - not Linux
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except OSError:
            return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


class _Output:
    """Line-atomic writes of prefixed lines to one stream, from many threads."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            try:
                self.stream.write(line if line.endswith("\n") else line + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def launch(self, text: str) -> None:
        self.write(f"[launch] {text}")


@dataclass
class _Child:
    spec: NodeSpec
    index: int
    argv: list[str]
    proc: subprocess.Popen | None = None
    pump: threading.Thread | None = None
    restart_at: float | None = None
    starts: int = 0
    stop_signal: int | None = None  # strongest signal the launcher had to send
    returncode: int | None = None
    reported: bool = False
    history: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def group_alive(self) -> bool:
        if self.proc is None:
            return False
        if self.proc.poll() is None:
            return True
        return bool(_proc_group_members(self.proc.pid))

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if self.stop_signal is None or sig > self.stop_signal:
            self.stop_signal = sig


def _pump(name: str, stream: IO[bytes], out: _Output) -> None:
    try:
        for raw in iter(stream.readline, b""):
            out.write(f"[{name}] {raw.decode('utf-8', 'replace').rstrip(chr(13) + chr(10))}")
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _child_env(env: dict[str, str] | None, out: IO[str]) -> dict[str, str]:
    child = dict(os.environ if env is None else env)
    child.setdefault("PYTHONUNBUFFERED", "1")  # Python nodes: lines in the order printed
    child.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        child.setdefault("RCUTILS_COLORIZED_OUTPUT", "1")  # children write to a pipe
    return child


def _start(child: _Child, out: _Output, env: dict[str, str], cwd: str | None) -> None:
    preexec = functools.partial(_child_setup, os.getpid()) if _child_setup else None
    child.proc = subprocess.Popen(
        child.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=preexec, env=env, cwd=cwd, bufsize=0,
    )
    child.starts += 1
    child.returncode = None
    child.reported = False
    child.stop_signal = None
    child.restart_at = None
    child.pump = threading.Thread(target=_pump, args=(child.name, child.proc.stdout, out),
                                  name=f"launch-pump-{child.name}", daemon=True)
    child.pump.start()
    out.launch(f"started {child.name} (pid {child.proc.pid})"
               + (f", start #{child.starts}" if child.starts > 1 else ""))


def _describe_code(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


# ----------------------------------------------------------------------------- run

def run(
    specs: Sequence[NodeSpec],
    *,
    out: IO[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    sigint_timeout: float = 5.0,
    sigterm_timeout: float = 5.0,
    poll_interval: float = 0.05,
    executables: dict[str, str] | None = None,
) -> int:
    """Run the nodes until one exits (without respawn) or a stop is requested; see the module.

    ``executables`` maps node names to executables to use instead of looking them up.
    Returns the exit code described in the module docstring.
    """
    output = _Output(out if out is not None else sys.stdout)
    specs = list(specs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        output.launch(f"error: node names must be unique, got {names}")
        return EXIT_USAGE
    children: list[_Child] = []
    missing = []
    for i, spec in enumerate(specs):
        try:
            exe = (executables or {}).get(spec.name) or find_executable(spec)
        except ExecutableNotFound as err:
            missing.append(str(err))
            continue
        children.append(_Child(spec, i, command_line(spec, exe)))
    if missing:
        for msg in missing:
            output.launch(f"error: {msg}")
        return EXIT_USAGE
    if not children:
        output.launch("error: nothing to launch")
        return EXIT_USAGE

    child_env = _child_env(env, out if out is not None else sys.stdout)
    workdir = None if cwd is None else str(cwd)
    stop = threading.Event()
    escalate = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if stop.is_set():
            escalate.set()
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, on_signal)

    blamed: _Child | None = None
    try:
        for child in children:
            if stop.is_set():
                break
            try:
                _start(child, output, child_env, workdir)
            except OSError as err:
                output.launch(f"{child.name} failed to start: {err}; stopping the rest")
                blamed = child
                stop.set()
                break

        while not stop.is_set():
            now = time.monotonic()
            for child in children:
                proc = child.proc
                if proc is None:
                    continue
                if not child.reported and proc.poll() is not None:
                    child.reported = True
                    child.returncode = proc.returncode
                    child.history.append(proc.returncode)
                    if child.pump is not None:
                        child.pump.join(timeout=1.0)  # print its last lines first
                    code = _describe_code(proc.returncode)
                    retries = child.spec.respawn_max_retries
                    spent = retries >= 0 and child.starts - 1 >= retries
                    if child.spec.respawn and proc.returncode != EXIT_USAGE and not spent:
                        output.launch(f"{child.name} exited with code {code}; respawning in "
                                      f"{child.spec.respawn_delay:g} s")
                        child.restart_at = now + child.spec.respawn_delay
                    else:
                        why = ""
                        if child.spec.respawn:
                            why = (" (bad parameters: not respawning)"
                                   if proc.returncode == EXIT_USAGE else
                                   f" after {retries} respawns")
                        output.launch(f"{child.name} exited with code {code}{why}; "
                                      f"stopping the rest")
                        if proc.returncode != 0:
                            blamed = child
                        stop.set()
                        break
                if child.restart_at is not None and now >= child.restart_at and not stop.is_set():
                    if child.group_alive():  # leftovers of the last run: make room first
                        child.signal_group(signal.SIGKILL)
                    try:
                        _start(child, output, child_env, workdir)
                    except OSError as err:
                        output.launch(f"{child.name} failed to restart: {err}; stopping the rest")
                        blamed = child
                        stop.set()
                        break
            time.sleep(poll_interval)  # a signal interrupts it; the handler only sets flags

        if received:
            output.launch(f"{signal.Signals(received[0]).name} received; stopping all nodes")
        unclean = _stop_all(children, output, sigint_timeout, sigterm_timeout, escalate)
    finally:
        # Whatever happened above (even an exception): no process outlives the launcher.
        for child in children:
            if child.group_alive():
                child.signal_group(signal.SIGKILL)
        for child in children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
            if child.pump is not None:
                child.pump.join(timeout=1.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if blamed is None and unclean:
        blamed = unclean[0]
    if blamed is None:
        output.launch("all nodes stopped")
        return EXIT_OK
    code = EXIT_NODE_BASE + blamed.index
    output.launch(f"exit code {code}: {blamed.name} failed")
    return code


def _stop_all(children: list[_Child], out: _Output, sigint_timeout: float,
              sigterm_timeout: float, escalate: threading.Event) -> list[_Child]:
    """SIGINT, then SIGTERM, then SIGKILL to every live group; returns nodes that stopped badly."""
    stopped_by_us = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for sig, timeout in ((signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout),
                         (signal.SIGKILL, 5.0)):
        alive = [c for c in children if c.group_alive()]
        if not alive:
            break
        if sig != signal.SIGINT:
            out.launch(f"{', '.join(c.name for c in alive)} still running; sending "
                       f"{signal.Signals(sig).name}")
        for child in alive:
            child.signal_group(sig)
        escalate.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not escalate.is_set():
            if not any(c.group_alive() for c in alive):
                break
            time.sleep(0.02)
    unclean = []
    for child in stopped_by_us:
        proc = child.proc
        assert proc is not None
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        rc = proc.returncode
        if child.pump is not None:
            child.pump.join(timeout=1.0)
        if child.stop_signal is not None and child.stop_signal != signal.SIGINT:
            out.launch(f"{child.name} did not stop on SIGINT; needed "
                       f"{signal.Signals(child.stop_signal).name}")
            unclean.append(child)
        elif rc is not None and rc not in _CLEAN_STOP_CODES:
            out.launch(f"{child.name} exited with code {_describe_code(rc)} while stopping")
            unclean.append(child)
    unclean.sort(key=lambda c: c.index)
    return unclean


# ----------------------------------------------------------------------------- CLI (debugging)

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m arm_bringup.launcher NODES.json``: run a node list given as JSON.

    The file holds a list of objects with NodeSpec's fields (package, executable, name,
    parameters, remappings, respawn, respawn_delay, respawn_max_retries, params_files) and
    optionally ``path``: the executable to run instead of looking it up.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m arm_bringup.launcher",
                                     description=main.__doc__)
    parser.add_argument("nodes", help="JSON file with the node list")
    parser.add_argument("--sigint-timeout", type=float, default=5.0)
    parser.add_argument("--sigterm-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    with open(args.nodes, encoding="utf-8") as f:
        items = json.load(f)
    specs, exes = [], {}
    for item in items:
        path = item.pop("path", None)
        item["remappings"] = [tuple(r) for r in item.get("remappings", [])]
        spec = NodeSpec(**item)
        specs.append(spec)
        if path:
            exes[spec.name] = path
    return run(specs, executables=exes, sigint_timeout=args.sigint_timeout,
               sigterm_timeout=args.sigterm_timeout)


if __name__ == "__main__":
    sys.exit(main())
