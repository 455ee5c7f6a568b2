"""Stable-Baselines3's own ``ActorCriticPolicy`` behind purepg.testing's signatures (log-prob, entropy),
its actor's parameters loaded from purepg's flat layout through an explicit ``state_dict`` key order.

SB3 casts Box observations to float32 before the network (``preprocess_obs`` returns ``obs.float()``), so
its policy is not float64 end to end even after ``.double()``. ``keep_float64=True`` replaces that
cast (in the policies module only) for the duration of a call, which is what a float64 comparison needs.
"""
import contextlib

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common import policies
from stable_baselines3.common.policies import ActorCriticPolicy

from purepg.testing import torch as tpg


def _policy(spec):
    box = gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float64)
    act = gym.spaces.Discrete(spec.act_dim) if spec.kind == "categorical" else gym.spaces.Box(-1, 1, (spec.act_dim,))
    fn = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[spec.activation]
    pol = ActorCriticPolicy(box, act, lambda _: 1e-3, net_arch=dict(pi=list(spec.hidden), vf=[2]), activation_fn=fn)
    return pol.double()


def actor_keys(spec):
    """purepg's layout as SB3 key names: the actor MLP's layers, the action head, then ``log_std``."""
    keys = [f"mlp_extractor.policy_net.{2 * i}.{p}" for i in range(len(spec.hidden)) for p in ("weight", "bias")]
    return keys + ["action_net.weight", "action_net.bias"] + (["log_std"] if spec.kind == "gaussian" else [])


@contextlib.contextmanager
def _float64_obs(enabled):
    if not enabled:
        yield
        return
    original = policies.preprocess_obs
    policies.preprocess_obs = lambda obs, space, normalize_images=True: obs.double()
    try:
        yield
    finally:
        policies.preprocess_obs = original


def evaluate(spec, theta, obs, act, keep_float64):
    """SB3's ``evaluate_actions`` at purepg's ``theta``: ``(log_prob, entropy)`` as NumPy."""
    pol = tpg.load(_policy(spec), theta, actor_keys(spec))
    with torch.no_grad(), _float64_obs(keep_float64):
        _, logp, H = pol.evaluate_actions(tpg.tensor(obs), tpg.tensor(act))
    return logp.numpy(), H.numpy()


def implementation(keep_float64=True):
    """``log_prob`` and ``entropy`` callables of SB3's policy (entropy evaluated at a zero action)."""
    def log_prob(spec, theta, obs, act):
        return evaluate(spec, theta, obs, act, keep_float64)[0]

    def entropy(spec, theta, obs):
        act = np.zeros(obs.shape[0], np.int64) if spec.kind == "categorical" else np.zeros((obs.shape[0], spec.act_dim))
        return evaluate(spec, theta, obs, act, keep_float64)[1]
    return {"log_prob": log_prob, "entropy": entropy}
