"""The launcher: one process per node, [name] prefixes, clean stops, crash propagation, respawn."""
from __future__ import annotations

import io
import os
import re
import signal

import pytest

from arm_bringup import launcher
from arm_bringup.nodes import NodeSpec
from bringup_helpers import pid_alive, start_launcher, started_pids, wait_dead

PKG = "arm_bringup_test"


def node(name: str, exe: str = "sleeper", *args: str, **fields) -> dict:
    """A node-list entry; extra sleeper options go through a params-less wrapper argv."""
    entry = {"package": PKG, "executable": exe, "name": name, **fields}
    if args:
        # The JSON runner cannot pass argv before --ros-args, so use a per-node shell wrapper.
        entry["executable"] = f"{exe}_{name}"
        entry["_args"] = list(args)
    return entry


@pytest.fixture
def launch(tmp_path, fake_prefix, ros_domain):
    """Start the launcher on a node list; afterwards kill whatever a failed test left alive."""
    started = []

    def _launch(nodes: list[dict], *args: str):
        lib = fake_prefix / "lib" / PKG
        for entry in nodes:
            extra = entry.pop("_args", None)
            if extra:
                base = (lib / entry["executable"].split("_", 1)[0]).read_text()
                wrapper = lib / entry["executable"]
                wrapper.write_text(base.replace('"$@"', " ".join(extra) + ' "$@"'))
                wrapper.chmod(0o755)
        w = start_launcher(tmp_path, nodes, *args)
        started.append(w)
        return w

    yield _launch
    for w in started:
        pids = list(started_pids(w).values()) + [
            int(m.group(1)) for m in map(re.compile(r"grandchild=(\d+)").search, w.lines) if m]
        w.kill()
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def grandchildren(w) -> list[int]:
    return [int(m.group(1)) for m in w.wait_for(r"grandchild=(\d+)")]


def test_prefixes_output_and_sigint_stops_every_process(launch, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("my_talker:\n  ros__parameters:\n    greeting: from_file\n"
                      "    names: [j1, j2]\n")
    w = launch([
        node("my_talker", "talker", params_files=[str(params)],
             parameters={"rate": 20.0}, remappings=[["chatter", "/renamed"]]),
        node("worker", "sleeper", "--grandchild"),
    ])
    ready = w.wait_for(r"^\[my_talker\] ready fqn=(\S+) pid=(\d+) greeting=(\S+) rate=(\S+) "
                       r"names=(\S+)")[0]
    # the node got its name (-r __node:=), the params file and the -p override
    assert ready.group(1) == "/my_talker"
    assert (ready.group(3), ready.group(4), ready.group(5)) == ("from_file", "20.0", "j1,j2")
    w.wait_for(r"^\[worker\] second line$")
    w.wait_for(r"^\[worker\] on stderr$")  # stderr is prefixed too
    pids = list(started_pids(w).values()) + grandchildren(w)
    assert len(pids) == 3 and all(pid_alive(p) for p in pids)

    w.signal(signal.SIGINT)  # Ctrl-C
    assert w.wait() == 0, w.text
    assert "[launch] SIGINT received; stopping all nodes" in w.text
    assert "[my_talker] talker stopped" in w.text  # it shut down cleanly, not killed
    assert wait_dead(pids, 2.0) == []
    # every line of the output is prefixed
    assert all(re.match(r"^\[\w+\] ", line) for line in w.lines), w.text


def test_death_of_a_node_stops_the_rest_and_the_exit_code_names_it(launch):
    w = launch([
        node("first", "sleeper", "--grandchild"),
        node("crasher", "sleeper", "--exit-after", "0.5", "--code", "3", "--grandchild"),
        node("third", "sleeper"),
    ])
    rc = w.wait()
    assert rc == launcher.EXIT_NODE_BASE + 1, w.text
    assert "[launch] crasher exited with code 3; stopping the rest" in w.text
    assert "[crasher] exiting with 3" in w.text
    assert "exit code 11: crasher failed" in w.text
    pids = list(started_pids(w).values()) + [
        int(x) for x in re.findall(r"grandchild=(\d+)", w.text)]
    assert len(pids) == 5
    # the crasher's orphaned grandchild went too: signals go to process groups
    assert wait_dead(pids, 2.0) == []


def test_node_ignoring_sigint_is_escalated_and_blamed(launch):
    w = launch([node("ok", "sleeper"), node("stubborn", "sleeper", "--ignore-sigint")],
               "--sigint-timeout", "0.5", "--sigterm-timeout", "2")
    w.wait_for(r"^\[stubborn\] second line")
    w.wait_for(r"^\[ok\] second line")
    pids = list(started_pids(w).values())
    w.signal(signal.SIGTERM)
    rc = w.wait()
    assert rc == launcher.EXIT_NODE_BASE + 1, w.text
    assert "stubborn still running; sending SIGTERM" in w.text
    assert "stubborn did not stop on SIGINT; needed SIGTERM" in w.text
    assert wait_dead(pids, 2.0) == []


def test_respawn_restarts_the_node_and_its_exits_do_not_stop_the_launch(launch, tmp_path):
    counts = tmp_path / "starts.txt"
    w = launch([
        node("steady", "sleeper"),
        node("flaky", "sleeper", "--exit-after", "0.2", "--code", "1",
             "--count-file", str(counts), respawn=True, respawn_delay=0.2),
    ])
    w.wait_for(r"^\[launch\] started flaky \(pid \d+\), start #3", timeout=20)
    w.wait_for(r"^\[flaky\] pid=", count=3)
    assert "[launch] flaky exited with code 1; respawning in 0.2 s" in w.text
    w.signal(signal.SIGINT)
    assert w.wait() == 0, w.text
    starts = [int(x) for x in counts.read_text().split()]
    assert len(starts) >= 3 and len(set(starts)) == len(starts)
    assert wait_dead(starts + list(started_pids(w).values()), 2.0) == []


def test_respawns_are_limited_and_a_bad_parameter_exit_is_not_respawned(launch, tmp_path):
    w = launch([
        node("steady", "sleeper"),
        node("flaky", "sleeper", "--exit-after", "0.2", "--code", "1", respawn=True,
             respawn_delay=0.2, respawn_max_retries=2),
    ])
    assert w.wait(timeout=30) == launcher.EXIT_NODE_BASE + 1, w.text
    assert w.text.count("[launch] flaky exited with code 1; respawning in 0.2 s") == 2
    assert "[launch] flaky exited with code 1 after 2 respawns; stopping the rest" in w.text
    w = launch([
        node("steady", "sleeper"),
        node("misconfigured", "sleeper", "--exit-after", "0.2", "--code", "2", respawn=True,
             respawn_delay=0.2),
    ])
    assert w.wait(timeout=30) == launcher.EXIT_NODE_BASE + 1, w.text
    assert "[launch] misconfigured exited with code 2 (bad parameters: not respawning); " \
        "stopping the rest" in w.text


def test_sigkilled_launcher_takes_its_nodes_along(launch):
    w = launch([node("a", "sleeper"), node("b", "talker")])
    w.wait_for(r"^\[b\] ready")
    w.wait_for(r"^\[a\] second line")
    pids = list(started_pids(w).values())
    w.signal(signal.SIGKILL)
    w.wait()
    assert wait_dead(pids, 5.0) == []  # PR_SET_PDEATHSIG


def test_missing_executable_is_named_and_nothing_starts():
    out = io.StringIO()
    rc = launcher.run([NodeSpec("arm_bringup_test_nope", "no_such_exe", "ghost")], out=out)
    assert rc == launcher.EXIT_USAGE
    assert "ghost" in out.getvalue() and "no_such_exe" in out.getvalue()
    assert "started" not in out.getvalue()


def test_command_line_carries_name_params_file_overrides_and_remappings():
    spec = NodeSpec("pkg", "exe", "n1", parameters={"task": "123", "rate": 20.0, "ok": True,
                                                   "names": ["a", "b"]},
                    remappings=[("in", "/out")], params_files=["/p.yaml"])
    assert launcher.command_line(spec, "/x/exe") == [
        "/x/exe", "--ros-args", "-r", "__node:=n1", "--params-file", "/p.yaml",
        "-p", "task:='123'", "-p", "rate:=20.0", "-p", "ok:=true", "-p", "names:=[a, b]",
        "-r", "in:=/out"]
