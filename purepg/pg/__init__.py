"""Policy-gradient estimation from a batch: returns and advantages, gradient estimators, surrogate objectives.

- :mod:`purepg.pg.returns`: discounted returns, reward-to-go, GAE.
- :mod:`purepg.pg.baselines`: the mean and the variance-optimal baselines.
- :mod:`purepg.pg.estimators`: REINFORCE (total return, reward-to-go) and the off-policy estimators.
- :mod:`purepg.pg.surrogates`: the importance-ratio surrogate, PPO clip and KL penalty, the TRPO Lagrangian.
"""
from purepg.pg import baselines, estimators, returns, surrogates

__all__ = ["returns", "baselines", "estimators", "surrogates"]
