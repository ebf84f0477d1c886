"""MuJoCo cells: real arm models (robosuite's MJCF: Panda, UR5e, Kinova Gen3, xArm7) on a table
with a cube, driven like a ros2_control arm (no ROS here; ``ros/cell_nodes.py`` is the bridge)."""
