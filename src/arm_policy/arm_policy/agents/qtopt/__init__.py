"""QT-Opt (Kalashnikov et al. 2018): CEM-maximised Q-learning with clipped double-Q on a
Polyak-averaged and a lagged target network; a baseline beside ARM and the shape of the
scale-out (``targets`` is what a separate Bellman-updater process runs). No ROS.

    from arm_policy.agents.qtopt import QTOptAgent, QTOptConfig
    agent = QTOptAgent(QTOptConfig(), device="cpu", seed=0)
    action = agent.act({"rgb": rgb, "gripper_open": 1.0, "gripper_height": 0.2, "gripper_aperture": 1.0},
                       explore=True).action
"""
from .agent import QTOptAgent, action_vector, qtopt_replay_fields, search_vector
from .cem import maximize
from .config import ACTION_SIZE, STATE_SIZE, QTOptConfig
from .network import QNetwork

__all__ = ["ACTION_SIZE", "QNetwork", "QTOptAgent", "QTOptConfig", "STATE_SIZE", "action_vector",
           "maximize", "qtopt_replay_fields", "search_vector"]
