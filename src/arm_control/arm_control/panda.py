"""Franka Emika Panda constants: joint names, limits and a neutral posture.

Limits are Franka's published joint limits (the same numbers as franka_description's
joint_limits.yaml). One source of truth for the simulator, IK, planning and trajectories.
"""
import numpy as np

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")

LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
MAX_VELOCITY = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])  # rad/s
MAX_ACCELERATION = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0])  # rad/s^2
MAX_JERK = np.array([7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0])  # rad/s^3

# Elbow up, hand pointing down over the table: RLBench's and MoveIt's "ready" pose.
NEUTRAL = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])

FINGER_OPEN = 0.04  # metres per finger
FINGER_CLOSED = 0.0


#: a finger this far open (of FINGER_OPEN) or more reads as open (RLBench: open amount > 0.9)
OPEN_FRACTION = 0.9


def gripper_is_open(fingers) -> bool:
    """RLBench's ``gripper_open``: measured, not commanded. True when both fingers are at least
    ``OPEN_FRACTION`` open; fingers closing, opening or resting on a grasped object read closed."""
    return bool(np.min(np.asarray(fingers, dtype=float)) > OPEN_FRACTION * FINGER_OPEN)
