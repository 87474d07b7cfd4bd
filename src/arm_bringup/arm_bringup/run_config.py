"""One run configuration: what `arm launch` composes for a run folder, written once and read by
every node of the launch.

    specs = nodes.resolve("sim_train", {"run_dir": "runs/cup", "task": "pick_up_cup"})
    specs = use_run_config("sim_train", specs)       # writes runs/cup/config.json + params.yaml

For a launch with a run folder (the nodes' ``run_dir`` parameter, sim_train), the parameters of
every node (the preset's params file, then the launch arguments and ``NODE.PARAM:=value``
overrides) are written to ``RUN/config.json`` (``{"config": {"launch", "nodes": {node: {param:
value}}}, "git", "command", ...}``, the record ``arm_policy.run_log.write_config`` writes for
every run) and, in the ROS 2 params-file form, to ``RUN/params.yaml``; each node then gets that
file as its only parameter source. A relaunch on the same folder writes both again from its own
arguments. ``arm evaluate RUN`` reads the task and episode length from ``config.json``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .nodes import NodeSpec
from .params_files import load_params_file

__all__ = ["PARAMS_FILE", "compose", "run_dir_of", "use_run_config"]

PARAMS_FILE = "params.yaml"


def compose(specs: list[NodeSpec]) -> dict[str, dict[str, Any]]:
    """node -> every parameter it gets: its params files in order, then its overrides."""
    out = {}
    for spec in specs:
        params: dict[str, Any] = {}
        for path in spec.params_files:
            params.update(load_params_file(path).get(spec.name, {}))
        params.update(spec.parameters)
        out[spec.name] = params
    return out


def run_dir_of(composed: dict[str, dict[str, Any]]) -> Path | None:
    """The run folder the nodes share (their ``run_dir`` parameter), or None."""
    found = {str(p["run_dir"]) for p in composed.values() if p.get("run_dir")}
    if len(found) > 1:
        raise ValueError(f"the nodes disagree on run_dir: {sorted(found)}")
    return Path(found.pop()) if found else None


def use_run_config(launch: str, specs: list[NodeSpec], write: bool = True) -> list[NodeSpec]:
    """``specs`` reading their parameters from the run folder's one configuration (written
    there unless ``write`` is False); unchanged for a launch without a run folder."""
    composed = compose(specs)
    run_dir = run_dir_of(composed)
    if run_dir is None:
        return specs
    params_file = run_dir / PARAMS_FILE
    if write:
        from arm_policy.checkpoints import atomic_write_bytes
        from arm_policy.run_log import write_config

        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, {"launch": launch, "nodes": composed})
        text = yaml.safe_dump({name: {"ros__parameters": params} for name, params in composed.items()},
                              sort_keys=False)
        atomic_write_bytes(params_file, (f"# written by `arm launch {launch}` from its arguments; "
                                         "the nodes of this run read their parameters here\n"
                                         + text).encode())
    return [dataclasses.replace(s, params_files=[str(params_file)], parameters={}) for s in specs]
