"""ros2 launch arm_bringup sim_train_qtopt.launch.py [run_dir:=runs/qt_graph] [minutes:=30] ...

QT-Opt's closed-loop grasping loop on one machine (also ``sim_train.launch.py algo:=qtopt``),
each node its own process over DDS: sim_node (the grasp_bin tray), perception_node,
control_node (short moves), the recorder (one grasp-episode bag per episode), training_node
(agent qtopt, respawned), policy_node (one move per step) and the episode_runner, whose exit at
the end of the budget ends the launch. The node list and the arguments live once in
``arm_bringup.nodes`` (preset ``sim_train_qtopt``); parameter values in
``config/sim_train_qtopt.yaml``.
"""
from arm_bringup.ros2_launch import ros2_launch_description

PRESET = "sim_train_qtopt"


def generate_launch_description():
    return ros2_launch_description(PRESET)
