"""ROS 2 params files and launch-argument values: where the preset files are, reading them
(``node: {ros__parameters: {...}}``), and turning an argument's text into the type its parameter
has in the file (YAML, as ``ros2 launch`` and ``ros2 param`` parse it). :mod:`arm_bringup.nodes`
resolves the presets with these; the launcher writes values back as ``-p name:=text``.

    from arm_bringup.params_files import config_dir, load_params_file
    load_params_file(config_dir() / "sim.yaml")["sim_node"]["task"]      # 'reach_target'
    fit_value("image_size", "64", 128)                                     # 64
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ArgumentError", "config_dir", "file_value", "fit_value", "load_params_file", "parse_bool",
           "to_text"]

PACKAGE = "arm_bringup"


class ArgumentError(ValueError):
    """A launch argument that does not exist, or a value that does not fit its parameter."""


def config_dir() -> Path:
    """``share/arm_bringup/config`` of the install space, else the source tree's ``config/``."""
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE)) / "config"
        if share.is_dir():
            return share
    except Exception:  # noqa: BLE001 - not installed / no ament index: use the source tree
        pass
    return Path(__file__).resolve().parent.parent / "config"


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ArgumentError(f"params file {path}: expected a mapping of node names")
    out: dict[str, dict[str, Any]] = {}
    for node, body in data.items():
        params = (body or {}).get("ros__parameters") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            raise ArgumentError(f"params file {path}: {node}: expected ros__parameters")
        out[str(node).lstrip("/")] = params
    return out


def load_params_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """node name -> {parameter: value} of a ROS 2 params file (leading '/' dropped)."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"params file {path} does not exist")
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


def file_value(params: Mapping[str, Mapping[str, Any]], node: str, param: str) -> Any:
    node_params = params.get(node, {})
    if param in node_params:
        return node_params[param]
    # nested form (a: {b: 1}) for dotted parameter names
    value: Any = node_params
    for part in param.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def to_text(value: Any) -> str:
    """A typed value as the YAML text that ``-p name:=value`` and launch arguments take."""
    if isinstance(value, str) and value and _parse_text(value) == value:
        return value
    lines = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().splitlines()
    if len(lines) > 1 and lines[-1] == "...":
        lines = lines[:-1]
    return "\n".join(lines)


def _parse_text(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_bool(name: str, text: str) -> bool:
    value = _parse_text(text)
    if isinstance(value, bool):
        return value
    raise ArgumentError(f"launch argument {name}:={text!r}: expected true or false")


def fit_value(where: str, text: str, reference: Any) -> Any:
    """Parse ``text`` as YAML and fit it to the type of the params file's ``reference``."""
    value = _parse_text(text)
    if reference is None:
        if isinstance(value, dict):  # ROS parameters have no map type: rcl would refuse the -p
            raise ArgumentError(f"{where}:={text!r}: a mapping is not a ROS parameter value; "
                                f"to pass it as a string (e.g. JSON) quote it: "
                                f"{where}:='\"...\"', or set it in the params file")
        return value
    if isinstance(reference, bool):
        if isinstance(value, bool):
            return value
        raise ArgumentError(f"{where}:={text!r}: expected true or false")
    if isinstance(reference, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ArgumentError(f"{where}:={text!r}: expected an integer")
    if isinstance(reference, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ArgumentError(f"{where}:={text!r}: expected a number")
    if isinstance(reference, str):
        return text
    if isinstance(reference, list):
        if not isinstance(value, list):
            raise ArgumentError(f"{where}:={text!r}: expected a list like [a, b]")
        if reference and value:
            return [fit_value(where, to_text(v), reference[0]) for v in value]
        return value
    return value
