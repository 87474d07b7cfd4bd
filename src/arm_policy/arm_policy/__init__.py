"""ARM: Q-attention, next-best-pose agent, replay, keyframes, policy and training nodes."""
