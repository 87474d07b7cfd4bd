"""Shared by the probes whose state grows by two values: ``extend_state(key, value_of)`` makes the
bin observation carry ``key`` (``value_of(observation)``, two floats), the bags and the replay
store it after [gripper_open, gripper_height, gripper_aperture], the agent's state become
[aperture, height, *value], and QTOptAgent.act append it before CEM as its replay batches hold it.
Everything is patched in memory; nothing in the repository changes."""
import numpy as np
import torch

from arm_policy import grasp_episodes as ge
from arm_policy.agents.qtopt import agent as qa


def extend_state(key: str, value_of) -> None:
    agent_observation, agent_act, agent_cem = ge.agent_observation, qa.QTOptAgent.act, qa.QTOptAgent._cem
    qa.STATE_SIZE = 4  # the replay's state field

    def observation(obs):
        return {**agent_observation(obs), key: np.asarray(value_of(obs), dtype=np.float32)}

    def stored_state(o):
        return np.array([o["gripper_open"], o["gripper_height"], o["gripper_aperture"], *o[key]], dtype=np.float32)

    def agent_state(stored, config):
        s = np.asarray(stored, dtype=np.float32)
        return np.array([s[2], s[1], s[3], s[4]], dtype=np.float32)

    def act(self, obs, explore):
        self.probe_extra = torch.as_tensor(obs[key], dtype=torch.float32)[None]
        return agent_act(self, obs, explore)

    def cem(self, net, features, state):
        if state.shape[1] == 2:  # act's [aperture, height]; batches from the replay hold all four
            state = torch.cat([state, self.probe_extra.to(state)], dim=1)
        return agent_cem(self, net, features, state)

    ge.agent_observation, ge.stored_state, ge.agent_state = observation, stored_state, agent_state
    qa.QTOptAgent.act, qa.QTOptAgent._cem = act, cem
