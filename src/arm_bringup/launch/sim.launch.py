"""ros2 launch arm_bringup sim.launch.py [task:=reach_target] [image_size:=128] [real_time:=true] ...

The simulated cell: sim_node (MuJoCo driver) + perception_node + control_node (+ recorder with
record:=true). The node list, the launch arguments and how they resolve into parameters are NOT
written here: they live once in ``arm_bringup.nodes`` (preset ``sim``), which ``arm launch sim``
runs too; parameter values live in ``config/sim.yaml``. Show the arguments with
``ros2 launch arm_bringup sim.launch.py --show-args``.
"""
from arm_bringup.ros2_launch import ros2_launch_description

PRESET = "sim"


def generate_launch_description():
    # DeclareLaunchArgument per argument of the preset, then launch_ros.actions.Node per
    # resolved NodeSpec: Node(package, executable, name, parameters=[sim.yaml, overrides],
    # remappings), each shutting the launch down when it exits.
    return ros2_launch_description(PRESET)
