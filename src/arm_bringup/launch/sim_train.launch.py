"""ros2 launch arm_bringup sim_train.launch.py [task:=pick_up_cup] [run_dir:=runs/sim_train] [minutes:=30] ...

The whole learning loop on one machine, each node its own process over DDS: sim_node,
perception_node, control_node, the recorder (one bag per episode), training_node (respawned when
it dies), policy_node and the episode_runner, whose exit at the end of the budget ends the launch.
The node list, the launch arguments and how they resolve into parameters live once in
``arm_bringup.nodes`` (preset ``sim_train``), which ``arm launch sim_train`` runs too; parameter
values live in ``config/sim_train.yaml``. Show the arguments with
``ros2 launch arm_bringup sim_train.launch.py --show-args``.
"""
from arm_bringup.ros2_launch import ros2_launch_description

PRESET = "sim_train"


def generate_launch_description():
    # DeclareLaunchArgument per argument of the preset, then launch_ros.actions.Node per
    # resolved NodeSpec (respawn for the trainer, Shutdown on exit for the others).
    return ros2_launch_description(PRESET)
