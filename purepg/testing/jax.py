"""JAX adapters: purepg's flat layout to and from a pytree of weights, in the order the user gives.

A JAX network is usually a pytree (dicts or lists) of arrays. ``layout`` is a list of
``(path, shape)`` in purepg's order (each layer's weight (out, in) -- transpose yours if you store
(in, out) -- then its bias). float64 needs ``jax.config.update("jax_enable_x64", True)``, which
:func:`unflatten` sets. jax is imported on use: this module imports without it.
"""
from __future__ import annotations

import numpy as np


def _jax():
    try:
        import jax
    except ImportError:
        raise ImportError("purepg.testing.jax needs JAX. Fix: pip install jax") from None
    jax.config.update("jax_enable_x64", True)
    return jax


def sequential_layout(spec):
    """``[(("W", l), (out, in)), (("b", l), (out,)), ...]``: the layout of an MLP of ``spec.sizes``."""
    out = []
    for l, (a, b) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        out += [(("W", l), (b, a)), (("b", l), (b,))]
    return out


def unflatten(theta, layout):
    """A dict ``path -> jnp.ndarray`` (float64) from the flat ``theta`` and ``layout``."""
    jnp = _jax().numpy
    size = sum(int(np.prod(s)) for _, s in layout)
    if size != np.shape(theta)[0]:
        raise ValueError(f"theta: expected {size} entries for the layout, got {np.shape(theta)[0]}. "
                         f"Fix: list every weight and bias of the network in the layout")
    tree, i = {}, 0
    for path, shape in layout:
        n = int(np.prod(shape))
        tree[path] = jnp.asarray(np.asarray(theta[i:i + n]).reshape(shape), dtype=jnp.float64)
        i += n
    return tree


def flatten(tree, layout):
    """The flat float64 vector of a pytree ``path -> array`` in ``layout`` order (e.g. a gradient)."""
    return np.concatenate([np.asarray(tree[path], dtype=np.float64).reshape(-1) for path, _ in layout])


def mlp(tree, spec, x):
    """The MLP of ``spec`` with the weights of ``tree`` (from :func:`unflatten`) at inputs ``x`` (N, d0)."""
    jnp = _jax().numpy
    act = {"tanh": jnp.tanh, "relu": lambda z: jnp.maximum(z, 0.0)}[spec.activation]
    L = len(spec.sizes) - 1
    for l in range(L):
        x = x @ tree[("W", l)].T + tree[("b", l)]
        x = act(x) if l < L - 1 else x
    return x
