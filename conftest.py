"""Fixtures every test folder of the workspace shares (pytest reads this file for all of them)."""
import os
import signal
import subprocess
import sys
import time

import pytest


def _default_sigint() -> None:
    # In the child before exec: Ctrl-C as in a terminal. A shell starts background jobs (this
    # suite under `nohup ... &`, say) with SIGINT ignored, and Python then never installs its
    # KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_configure(config):
    # Every ROS participant of the tests, in this process or one it starts, talks over UDP on
    # 127.0.0.1 only (each test adds a ROS_DOMAIN_ID of its own): set before the first
    # participant, since Fast DDS reads its profile once per process. arm_bringup/loopback.py
    # says why not ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.
    from arm_bringup.loopback import use_loopback_udp

    use_loopback_udp(os.environ)
    # `make test` runs the files on two pytest workers (xdist), one per core: one torch/OpenMP
    # thread per worker and per process a test starts, or four threads would fight over two cores.
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        # a plugin has already imported torch in the worker, so the variable comes too late for
        # it (measured: 2 threads with the variable at "1"); set the thread count itself
        torch = sys.modules.get("torch")
        if torch is not None and os.environ["OMP_NUM_THREADS"] == "1":
            torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    # A test module that sets torch's threads at import (three did: `torch.set_num_threads(2)`)
    # undoes the above for its whole worker. Two OpenMP threads in a worker whose second core is
    # busy with the other worker wait on each other at every op: measured, an update of the tiny
    # test agent took 8 s instead of 0.1 s, and a 30 s test ran for 227-479 s in CI.
    torch = sys.modules.get("torch")
    if (int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and torch is not None
            and os.environ.get("OMP_NUM_THREADS") == "1" and torch.get_num_threads() != 1):
        pytest.fail(f"a test module set torch to {torch.get_num_threads()} threads at import; under "
                    "pytest-xdist each worker keeps one (use the one_torch_thread fixture instead)",
                    pytrace=False)


@pytest.fixture
def ctrl_c():
    """``ctrl_c(cmd, after, wait=0, timeout=120, signum=SIGINT) -> (exit code, output)``: run
    ``cmd``, press Ctrl-C (or send ``signum``: SIGTERM is `kill`) ``wait`` seconds after a line of
    its output contains ``after``, and wait for it to end."""
    def run(cmd: list[str], after: str, wait: float = 0.0, timeout: float = 120.0,
            signum: int = signal.SIGINT) -> tuple[int, str]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_default_sigint)
        lines = []
        try:
            for line in proc.stdout:
                lines.append(line)
                if after in line:
                    break
            time.sleep(wait)
            proc.send_signal(signum)
            lines.append(proc.communicate(timeout=timeout)[0])
        finally:
            if proc.poll() is None:
                proc.kill()
        return proc.returncode, "".join(lines)

    return run
