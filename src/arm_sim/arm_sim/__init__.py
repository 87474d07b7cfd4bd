"""MuJoCo Panda scene, the eight ARM tasks, scripted expert demos and the simulator driver."""
