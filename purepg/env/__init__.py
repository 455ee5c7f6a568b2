"""Environments and data collection.

- :mod:`purepg.env.envs`: making vectorised gymnasium environments and checking their spaces.
- :mod:`purepg.env.rollout`: collecting a batch with a policy (terminated and truncated kept apart).
- :mod:`purepg.env.normalize`: running observation statistics and reward scaling.
"""
from purepg.env import envs, normalize, rollout

__all__ = ["envs", "rollout", "normalize"]
