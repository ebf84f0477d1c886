"""Benchmarks and checkers that run the real node over DDS (rclpy): the node bench, the soak and
the invariant checker. ROS-free benchmarks live in streaming_flow_ros/bench."""
