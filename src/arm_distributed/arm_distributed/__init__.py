"""Training on Ray: QT-Opt's collectors, replay servers, Bellman updaters and learner as actors,
on this machine or a cluster (`arm train --distributed`). No ROS; imports arm_policy and is never
imported by it."""
