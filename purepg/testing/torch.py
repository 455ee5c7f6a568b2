"""PyTorch adapters: a user's ``torch.nn`` network read and written in purepg's flat layout, in float64.

``nn.Sequential`` of ``nn.Linear`` layers has purepg's layout already (each layer's weight (out, in)
row-major, then its bias); any other module maps to it through the order of its ``state_dict`` keys,
which the user gives. torch is imported on use: this module imports without it.
"""
from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("purepg.testing.torch needs PyTorch. Fix: pip install torch") from None
    return torch


def sequential(spec):
    """``nn.Sequential(nn.Linear, act, ..., nn.Linear)`` of a :class:`purepg.testing.PolicySpec`, float64."""
    torch = _torch()
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[spec.activation]
    layers = []
    for i, (a, b) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([act()] if i < len(spec.sizes) - 2 else [])
    return torch.nn.Sequential(*layers).double()


def load(module, theta, keys=None):
    """Copy the flat ``theta`` (P,) into ``module``'s parameters, in ``keys`` order (default: the
    ``state_dict`` order, which is purepg's for ``nn.Sequential`` of ``nn.Linear``); returns the module.

    Raises ValueError naming the sizes when ``theta`` does not have exactly the parameters' total size.
    """
    torch = _torch()
    state = module.state_dict()
    keys = list(state) if keys is None else list(keys)
    sizes = [state[k].numel() for k in keys]
    if sum(sizes) != np.shape(theta)[0]:
        raise ValueError(f"theta: expected {sum(sizes)} entries for keys {keys}, got {np.shape(theta)[0]}. "
                         f"Fix: give the keys in purepg's layout order (each weight (out, in) then its bias)")
    new, i = {}, 0
    for k, n in zip(keys, sizes):
        new[k] = torch.as_tensor(np.asarray(theta[i:i + n]), dtype=torch.float64).reshape(state[k].shape)
        i += n
    module.load_state_dict({**state, **new})
    return module


def flat(module, keys=None):
    """The flat float64 vector of ``module``'s parameters in ``keys`` order (default: ``state_dict`` order)."""
    state = module.state_dict()
    keys = list(state) if keys is None else list(keys)
    return np.concatenate([state[k].detach().double().reshape(-1).numpy() for k in keys])


def grad(module, keys=None):
    """The flat float64 gradient of ``module``'s parameters (after ``backward``) in ``keys`` order."""
    params = dict(module.named_parameters())
    keys = list(params) if keys is None else list(keys)
    return np.concatenate([params[k].grad.detach().double().reshape(-1).numpy() for k in keys])


def tensor(x):
    """A float64 (or int64 for integer arrays) tensor of a NumPy array."""
    torch = _torch()
    x = np.asarray(x)
    return torch.as_tensor(x, dtype=torch.int64 if np.issubdtype(x.dtype, np.integer) else torch.float64)
