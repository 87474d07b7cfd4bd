"""Panda kinematics, OMPL planning with collision checking, ruckig trajectories, control node."""
