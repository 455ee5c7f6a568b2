"""The structure a user's policy network is built from, and the purepg policy it corresponds to."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicySpec:
    """A policy's structure: ``kind`` ("categorical" or "gaussian"), input and output sizes, hidden widths,
    activation ("tanh" or "relu").

    Parameters are laid out as ``torch.nn.utils.parameters_to_vector`` of
    ``nn.Sequential(nn.Linear(obs_dim, h1), act, ..., nn.Linear(h_k, act_dim))``; a Gaussian policy appends
    its state-independent ``log_std`` (act_dim,).
    """

    kind: str
    obs_dim: int
    act_dim: int
    hidden: tuple = (64, 64)
    activation: str = "tanh"

    @property
    def sizes(self):
        """Layer sizes ``(obs_dim, *hidden, act_dim)``."""
        return (self.obs_dim, *self.hidden, self.act_dim)

    def policy(self):
        """The :class:`purepg.Policy` of this structure."""
        import purepg
        make = purepg.CategoricalPolicy if self.kind == "categorical" else purepg.GaussianPolicy
        return make(self.obs_dim, self.act_dim, self.hidden, self.activation)
