"""ros2 launch arm_bringup real.launch.py [params_file:=my_cell.yaml] [velocity_scaling:=0.2] ...

The real cell: perception_node + control_node (+ recorder with record:=true) against the
RealSense driver's topics (/camera/camera/color/image_raw,
/camera/camera/aligned_depth_to_color/image_raw, /camera/camera/color/camera_info) and a
ros2_control JointTrajectoryController; start those drivers first. Joint names (panda_joint* or
fr3_joint*), the controller topic and the camera extrinsics come from ``config/real.yaml`` (or
``params_file:=``). The node list and the arguments live once in ``arm_bringup.nodes`` (preset
``real``), which ``arm launch real`` runs too.
"""
from arm_bringup.ros2_launch import ros2_launch_description

PRESET = "real"


def generate_launch_description():
    # DeclareLaunchArgument per argument of the preset, then launch_ros.actions.Node per
    # resolved NodeSpec: Node(package, executable, name, parameters=[real.yaml, overrides],
    # remappings), each shutting the launch down when it exits.
    return ros2_launch_description(PRESET)
