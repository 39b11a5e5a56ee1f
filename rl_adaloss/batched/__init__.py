"""The batched engine: K independent PPO runs ("members") advanced in lockstep in one process.

* :mod:`rl_adaloss.batched.envs`: batched torch Pendulum-v1 and CartPoleSwingUp-v1, state tensors (K, n_envs, ...).
* :mod:`rl_adaloss.batched.policy`: the actor-critic MLP with a leading member axis, SB3's distributions and gSDE.
* :mod:`rl_adaloss.batched.ppo`: rollouts, per-member VecNormalize, GAE and the PPO update of ``AdaLossPPO``.
"""
