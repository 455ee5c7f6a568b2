"""The function approximators: the MLP and its hand-derived passes, the action distributions, the
policies built from both, and the value function.

- :mod:`purepg.model.nn`: the MLP, forward, backward (VJP), per-sample gradients and forward mode (JVP).
- :mod:`purepg.model.distributions`: categorical and diagonal Gaussian: log-prob, entropy, KL, their gradients.
- :mod:`purepg.model.policy`: score, Fisher matrix and Fisher-vector product of a policy network.
- :mod:`purepg.model.value`: the state-value network and its regression loss.
"""
from purepg.model.nn import MLP
from purepg.model.policy import CategoricalPolicy, GaussianPolicy, Policy
from purepg.model.value import ValueFunction

__all__ = ["MLP", "Policy", "CategoricalPolicy", "GaussianPolicy", "ValueFunction"]
