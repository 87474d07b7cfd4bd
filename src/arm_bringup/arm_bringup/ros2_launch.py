"""launch_ros glue: ``launch/NAME.launch.py`` for machines with a full ROS 2 install.

    # launch/sim.launch.py
    from arm_bringup.ros2_launch import ros2_launch_description
    def generate_launch_description():
        return ros2_launch_description("sim")

The node list, the arguments and their resolution are :mod:`arm_bringup.nodes`, the same code
``arm launch`` runs; this module only turns them into ``launch`` / ``launch_ros`` actions (which
are not installable on the wheel-only machines, so they are imported inside the functions).
"""
from __future__ import annotations

from typing import Any

from .nodes import _preset, argument_defaults, resolve

__all__ = ["ros2_launch_description"]

_EXPLICIT = "_arm_bringup.explicit_args"


def ros2_launch_description(preset_name: str):
    """``LaunchDescription`` for ``launch/<preset>.launch.py`` (needs ``launch``/``launch_ros``).

    One ``DeclareLaunchArgument`` per argument of the preset, then an ``OpaqueFunction`` that
    resolves the arguments with :func:`resolve` (the same code ``arm launch`` runs) and returns
    one ``launch_ros.actions.Node`` per spec, with ``parameters=[params file, overrides]``.
    A first ``OpaqueFunction``, before the declarations fill in defaults, notes which arguments
    were given explicitly, so defaults do not override a custom params file. Nodes without
    respawn shut the launch down when they exit, like ``arm launch``.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    preset = _preset(preset_name)
    defaults = argument_defaults(preset)
    names = [a.name for a in preset.arguments]

    def note_explicit(context, *args, **kwargs):
        given = [n for n in names if n in context.launch_configurations]
        given += [k for k in context.launch_configurations
                  if "." in k and k.split(".", 1)[0] in preset.node_names]
        context.launch_configurations[_EXPLICIT] = "\n".join(given)
        return None

    entities: list[Any] = [OpaqueFunction(function=note_explicit)]
    for arg in preset.arguments:
        entities.append(DeclareLaunchArgument(
            arg.name, default_value=defaults[arg.name], description=arg.description))
    entities.append(OpaqueFunction(function=_launch_setup, args=[preset.name]))
    return LaunchDescription(entities)


def _launch_setup(context, preset_name: str, *args, **kwargs):
    from launch.actions import Shutdown
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    preset = _preset(preset_name)
    configs = context.launch_configurations
    explicit = [n for n in configs.get(_EXPLICIT, "").split("\n") if n]
    given = {n: configs[n] for n in explicit if n in configs}
    # Flag arguments (record) are read from the configuration whether given or defaulted.
    for arg in preset.arguments:
        if not arg.targets and arg.name in configs and arg.name != "params_file":
            given.setdefault(arg.name, configs[arg.name])
    specs = resolve(preset, given)

    actions = []
    for spec in specs:
        # Strings go through ParameterValue(str) so launch_ros does not YAML-parse them again.
        overrides = {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v
                     for k, v in spec.parameters.items()}
        extra: dict[str, Any] = {}
        if spec.respawn:
            extra.update(respawn=True, respawn_delay=spec.respawn_delay,
                         respawn_max_retries=spec.respawn_max_retries)
        else:
            extra["on_exit"] = Shutdown(reason=f"{spec.name} exited")
        common = dict(package=spec.package, executable=spec.executable, name=spec.name,
                      parameters=[*spec.params_files, overrides],
                      remappings=list(spec.remappings), output="screen", emulate_tty=True)
        try:
            actions.append(Node(**common, **extra))
        except TypeError:
            if "respawn_max_retries" not in extra:
                raise
            # launch before Iron (Humble) has no respawn_max_retries: respawn without a limit
            extra.pop("respawn_max_retries")
            actions.append(Node(**common, **extra))
    return actions
