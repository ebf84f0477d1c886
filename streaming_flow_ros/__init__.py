"""streaming_flow_ros: Streaming Flow Policy (SFP, arXiv 2505.21851) on ROS 2 arms.

Conventions, stated once for the whole package:

- Flow time ``t`` runs in [0, 1] from the anchor (the last commanded action, t = 0) forward to
  the end of the predicted chunk (t = 1). It *is* execution time rescaled:
  ``t = tau / (H * data_period)``. (lerobot runs the other way, from noise at t=1; we do not.)
- A chunk has H + 1 waypoints ``a_0..a_H`` at the data rate; waypoint j sits at ``t = j / H``.
- Units: radians for joints, seconds for time, Hz for rates. The *data rate* is the rate the
  demonstrations were resampled to for training; the *control rate* is the node's timer rate.
  A control tick advances flow time by ``dt = data_rate / (control_rate * H)``.
- Normalised values are named with an ``_n`` suffix (``action_n``); robot-unit values are not.
- Shape legend: B batch, T_o observation horizon, H prediction horizon (chunk has H + 1 points),
  D_a action dim, D_s state dim, C/Hh/Ww image channels/height/width.

Layers (data flows one way): data (bags -> episodes -> windows) -> train -> checkpoint ->
policy (streaming runtime, safety) -> ros (node). Only ``ros`` imports rclpy.
"""

__version__ = "0.1.0"
