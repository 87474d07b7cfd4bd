"""Ray for a training run: a local instance on this machine (localhost only, token authentication
on), or an existing cluster joined by address; stopped again with every process it started.

    with ray_session(DistributedSettings(), log=print) as session:
        print(session.node_id)           # the driver's node: run folder, replay servers, learner

A local start binds every Ray server (GCS, raylets, workers, the dashboard if asked for) to
127.0.0.1: nothing listens on a public address. Ray >= 2.59 turns token authentication on for a
local instance by itself (and for a joined cluster when a token is at hand); a run refuses to
start with ``RAY_AUTH_MODE`` set to anything but ``token``. A joined cluster (``address``) keeps
its own network settings (start it with ``RAY_AUTH_MODE=token ray start ...``; see the README).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

from .settings import DistributedSettings

__all__ = ["RaySession", "ray_processes", "ray_session"]

#: Ray reads this when imported: 0 = use the loopback address as the node's IP (its switch for
#: single-machine use on laptops), so a local instance never binds a public interface
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: the nice value the raylet gives the worker processes it starts (Ray's default: 15)
_NICENESS = "RAY_worker_niceness"
#: token authentication, said explicitly: Ray turns it on by itself for a local instance but then
#: warns at every start that one may opt out
_AUTH_MODE = "RAY_AUTH_MODE"


@dataclass
class RaySession:
    node_id: str  # the driver's Ray node
    local: bool  # started here (and stopped on exit), or joined
    temp_dir: str | None  # a local instance's session folder (its processes name it)
    dashboard_url: str | None
    started_seconds: float  # ray.init's wall time


def ray_processes(temp_dir: str) -> list[int]:
    """PIDs of the processes of the local Ray instance whose session folder is ``temp_dir``."""
    out = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def _stop_leftovers(temp_dir: str, log: Callable[[str], None]) -> None:
    """SIGKILL what ray.shutdown left of our local instance (it should leave nothing)."""
    deadline = time.monotonic() + 5.0
    while ray_processes(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = ray_processes(temp_dir)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        log(f"ray: killed {len(left)} processes ray.shutdown left behind")


@contextlib.contextmanager
def ray_session(settings: DistributedSettings, log: Callable[[str], None] = print) -> Iterator[RaySession]:
    """Start (or join) Ray for the duration of the block; see the module docstring."""
    local = not settings.address
    if os.environ.get(_AUTH_MODE, "token").lower() != "token":
        raise RuntimeError(f"RAY_AUTH_MODE={os.environ[_AUTH_MODE]}: arm train --distributed keeps Ray's "
                           "token authentication on; unset it (or set it to token)")
    saved = {name: os.environ.get(name) for name in (_LOOPBACK_SWITCH, _NICENESS, _AUTH_MODE)}
    if local:
        os.environ[_AUTH_MODE] = "token"
        os.environ[_LOOPBACK_SWITCH] = "0"  # for the processes Ray starts, and for Ray imported from now on
        os.environ[_NICENESS] = str(settings.worker_niceness)  # read by the raylet it starts
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process")
    cluster_switch = ray_constants.ENABLE_RAY_CLUSTER
    if local:
        ray_constants.ENABLE_RAY_CLUSTER = False  # read when the node IP is resolved: Ray imported earlier
    temp_dir = tempfile.mkdtemp(prefix="arm-ray-", dir="/tmp") if local else None  # short: Ray's sockets live there
    began = time.monotonic()
    # a namespace of its own: the actor names of two runs on one cluster never meet
    kwargs = dict(logging_level="WARNING", log_to_driver=True, namespace=f"arm-{uuid.uuid4().hex[:12]}")
    if local:
        cpus = settings.ray_cpus or max(os.cpu_count() or 1, settings.actor_cpus)
        ctx = ray.init(num_cpus=cpus, include_dashboard=settings.dashboard, dashboard_host="127.0.0.1",
                       _node_ip_address="127.0.0.1", _temp_dir=temp_dir, **kwargs)
    else:
        ctx = ray.init(address=settings.address, **kwargs)
    try:
        url = ctx.dashboard_url or None
        session = RaySession(ray.get_runtime_context().get_node_id(), local, temp_dir,
                             f"http://{url}" if url else None, time.monotonic() - began)
        where = (f"a local Ray on 127.0.0.1 ({cpus} logical CPUs, session folder {temp_dir})" if local
                 else f"the Ray cluster at {settings.address}")
        log(f"ray: {where} in {session.started_seconds:.1f} s"
            + (f"; dashboard {session.dashboard_url}" if session.dashboard_url else ""))
        yield session
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster_switch
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if local:
            _stop_leftovers(temp_dir, log)
            shutil.rmtree(temp_dir, ignore_errors=True)
