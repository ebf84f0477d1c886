"""Streaming runtime, checkpoints and safety: what the node calls. Imports no ROS."""
