"""Conventions: where implementations of one algorithm differ, one named option per difference, and
profiles (tables of option values) that set them all to one library's semantics.

Each option is a field of the Config of the algorithms it concerns, declared with :func:`option`; its
metadata holds the meaning, the valid values and, for each library, the value it uses and where (a
file in that library, or a paper). purepg's own behaviour is the field's default and the ``purepg``
profile. A profile is data: :data:`PROFILES` maps a profile name to ``{field: value}``; a field a
profile does not name keeps purepg's value. :func:`configure` builds a Config from a profile and
explicit fields (the explicit ones win) and returns the record ``config.json`` keeps of both.

Sources are paths inside each library's source tree (Stable-Baselines3 2.9.2, sb3-contrib 2.9.2,
CleanRL's single-file ``ppo.py`` / ``ppo_continuous_action.py``, Tianshou 2.0.1, PyTorch 2.13.0). A
library absent from an option's ``used_by`` has no such feature (CleanRL has no TRPO; Tianshou's PPO
no KL early stop; its learning-rate schedules, torch schedulers, are not compared).
"""
from __future__ import annotations

import dataclasses
import types

from purepg import _check
from typing import NamedTuple

LIBRARIES = ("purepg", "sb3", "cleanrl", "tianshou")


class Convention(NamedTuple):
    """One option: its meaning, valid values, purepg's value and each library's ``(value, source)``."""

    name: str
    meaning: str
    values: tuple
    default: object
    used_by: dict          # library -> (value, source)


def _c(name, meaning, values, default, **used_by):
    return Convention(name, meaning, tuple(values), default, used_by)


_SB3_PPO = "stable_baselines3/ppo/ppo.py (PPO.train)"
_SB3_TRPO = "sb3_contrib/trpo/trpo.py (TRPO.train)"
_SB3_CG = "sb3_contrib/common/utils.py (conjugate_gradient_solver)"
_CLEANRL = "cleanrl/ppo.py, ppo_continuous_action.py"
_TORCH_CLIP = "torch/nn/utils/clip_grad.py (clip_grad_norm_, via SB3/CleanRL/Tianshou)"
_TS_PPO = "tianshou/algorithm/modelfree/ppo.py (PPO._update_with_batch)"

CONVENTIONS = {c.name: c for c in (
    _c("advantage_norm", "advantage standardisation: population std (ddof 0, no offset) or sample std "
       "(ddof 1) + 1e-8 (a minibatch of one left unchanged)", ("population", "sample_eps"), "population",
       purepg=("population", "purepg/algos/common.py (normalize_adv)"), sb3=("sample_eps", _SB3_PPO + "; " + _SB3_TRPO),
       cleanrl=("sample_eps", _CLEANRL), tianshou=("sample_eps", _TS_PPO + " (std + _eps, _eps = 1e-8)")),
    _c("grad_clip_offset", "global-norm clipping g * c / (||g|| + offset)", (0.0, 1e-6), 0.0,
       purepg=(0.0, "purepg/optim/adam.py (clip_grad_norm)"), sb3=(1e-6, _TORCH_CLIP), cleanrl=(1e-6, _TORCH_CLIP),
       tianshou=(1e-6, "tianshou/algorithm/algorithm_base.py (Algorithm.Optimizer.step)")),
    _c("value_clip", "with clip_vf: max of unclipped and clipped squared errors, or the clipped prediction "
       "regressed alone", ("max", "prediction"), "max",
       purepg=("max", "PPO paper code; purepg/model/value.py eq. 2"), sb3=("prediction", _SB3_PPO + " clip_range_vf"),
       cleanrl=("max", _CLEANRL + " clip_vloss"), tianshou=("max", _TS_PPO + " value_clip (clip range = eps_clip)")),
    _c("vf_loss", "the value regression: mse = mean (V - R)^2, half_mse = 1/2 mean (V - R)^2 (weighted by vf_coef "
       "in PPO; the critic fit's loss in TRPO)", ("mse", "half_mse"), None,
       purepg=("ppo: mse; trpo: half_mse", "purepg/algos/ppo.py; purepg/model/value.py eq. 1"),
       sb3=("mse", _SB3_PPO + "; " + _SB3_TRPO + " (F.mse_loss)"), cleanrl=("half_mse", _CLEANRL + " v_loss"),
       tianshou=("mse", _TS_PPO + " vf_loss")),
    _c("schedule_at", "progress at which lr and clip schedules are evaluated: start of the iteration, or "
       "after the batch is collected", ("start", "after_collection"), "start",
       purepg=("start", "purepg/algos/ppo.py"), sb3=("after_collection", "stable_baselines3/common/on_policy_algorithm.py "
       "(collect_rollouts updates _current_progress_remaining)"), cleanrl=("start", _CLEANRL + " anneal_lr")),
    _c("kl_stop_at", "target_kl early stop: tested per minibatch before its step, or after each epoch",
       ("minibatch", "epoch"), "minibatch", purepg=("minibatch", "purepg/algos/ppo.py"), sb3=("minibatch", _SB3_PPO),
       cleanrl=("epoch", _CLEANRL)),
    _c("kl_stop_factor", "stop when the KL exceeds kl_stop_factor * target_kl", (1.5, 1.0), 1.5,
       purepg=(1.5, "purepg/algos/ppo.py"), sb3=(1.5, _SB3_PPO), cleanrl=(1.0, _CLEANRL)),
    _c("kl_stop_estimator", "the KL the stop tests: exact mean KL(old || new) over the minibatch states, or the "
       "k3 estimate mean((r - 1) - log r) over its sampled actions", ("exact", "k3"), "exact",
       purepg=("exact", "purepg/algos/ppo.py"), sb3=("k3", _SB3_PPO + " approx_kl_div"), cleanrl=("k3", _CLEANRL + " approx_kl")),
    _c("line_search_kl", "line-search acceptance: KL(old || new) <= delta, or KL(new || old) < delta",
       ("old_new_le", "new_old_lt"), "old_new_le", purepg=("old_new_le", "TRPO paper eq. 14; purepg/optim/trust_region.py"),
       sb3=("new_old_lt", _SB3_TRPO + " kl_divergence(distribution, old_distribution)")),
    _c("cg_x0", "CG start: zeros, or 1e-4 * standard normal (drawn from the update's Generator)",
       ("zero", "randn"), "zero", purepg=("zero", "purepg/optim/cg.py"), sb3=("randn", _SB3_CG + " 1e-4 * randn_like")),
    _c("cg_stop", "CG stopping test: ||r|| <= cg_tol ||b|| (relative), or ||r||^2 < cg_tol (absolute)",
       ("relative", "absolute"), "relative", purepg=("relative", "purepg/optim/cg.py"), sb3=("absolute", _SB3_CG + " residual_tol")),
    _c("vf_adam_eps", "Adam's epsilon of the critic fit", (1e-8, 1e-5), 1e-8,
       purepg=(1e-8, "PyTorch Adam default; purepg/model/value.py"),
       sb3=(1e-5, "stable_baselines3/common/policies.py (ActorCriticPolicy: Adam eps 1e-5)")),
    _c("adam_eps", "Adam's epsilon (PPO)", (1e-5, 1e-8), 1e-5, purepg=(1e-5, "purepg/algos/ppo.py"),
       sb3=(1e-5, "stable_baselines3/common/policies.py (ActorCriticPolicy)"), cleanrl=(1e-5, _CLEANRL + " optim.Adam(eps=1e-5)"),
       tianshou=(1e-8, "tianshou/algorithm/optim.py (AdamOptimizerFactory default; set explicitly)")),
)}

# The profiles: {profile: {field: value}}; fields not named keep purepg's default. adam_eps is an ordinary
# field (any positive number): the table records each library's value, the profiles leave it to the user.
PROFILES = {
    "purepg": {},
    "sb3": {"advantage_norm": "sample_eps", "grad_clip_offset": 1e-6, "value_clip": "prediction", "vf_loss": "mse",
            "schedule_at": "after_collection", "kl_stop_estimator": "k3", "line_search_kl": "new_old_lt",
            "cg_x0": "randn", "cg_stop": "absolute", "vf_adam_eps": 1e-5},
    "cleanrl": {"advantage_norm": "sample_eps", "grad_clip_offset": 1e-6, "vf_loss": "half_mse",
                "kl_stop_at": "epoch", "kl_stop_factor": 1.0, "kl_stop_estimator": "k3"},
    "tianshou": {"advantage_norm": "sample_eps", "grad_clip_offset": 1e-6, "vf_loss": "mse"},
}


# Numeric options accept any value of their range (the libraries' values are the documented points).
RANGES = {"grad_clip_offset": "[0, inf)", "kl_stop_factor": "(0, inf)", "vf_adam_eps": "(0, inf)",
          "adam_eps": "(0, inf)"}


def range_of(name) -> str:
    """The range of option ``name`` in the grammar of :func:`purepg._check.field`."""
    return RANGES[name] if name in RANGES else " | ".join(CONVENTIONS[name].values)


def option(name, default, symbol=""):
    """A Config field for convention ``name`` with purepg's ``default``; its metadata are the four keys of
    :mod:`purepg.algos.fields` (so the field is documented and checked like every other). The source lists
    each library's value; ``purepg algos --conventions NAME`` gives where in the library."""
    c = CONVENTIONS[name]
    source = "; ".join(f"{lib} {v}" for lib, (v, _) in c.used_by.items())
    return dataclasses.field(default=default, metadata=types.MappingProxyType(
        {"symbol": symbol, "meaning": c.meaning, "range": range_of(name), "source": source}))


def options_of(Config) -> tuple:
    """The convention fields of ``Config`` (those named in :data:`CONVENTIONS`), in field order."""
    return tuple(f.name for f in dataclasses.fields(Config) if f.name in CONVENTIONS)


def check_profile(name) -> str:
    if name not in PROFILES:
        _check.fail("conventions", f"a profile among {', '.join(PROFILES)}", f"the unknown profile {name!r}",
                    "pick one of those")
    return name


def check_value(name, value):
    """One line naming the option and its valid values if ``value`` is outside its range."""
    from purepg import _check

    _check.field(value, name, range_of(name), CONVENTIONS[name].default)


def profile_values(Config, profile) -> dict:
    """``{field: value}`` of ``profile`` for the convention fields ``Config`` has."""
    table = PROFILES[check_profile(profile)]
    return {k: table[k] for k in options_of(Config) if k in table}


def configure(Config, profile="purepg", **explicit):
    """``(config, record)``: ``Config`` with ``profile``'s values, then ``explicit`` fields on top.

    ``record`` is what ``config.json`` keeps: the profile, its values and every explicit field that
    contradicts it (``{field: {"profile": v, "explicit": w}}``); the explicit value is the one used.
    """
    values = profile_values(Config, profile)
    overridden = {k: {"profile": values[k], "explicit": v} for k, v in explicit.items()
                  if k in values and values[k] != v}
    config = Config(**{**values, **explicit})
    return config, {"profile": profile, "values": values, "overridden": overridden}


def table(profile) -> list:
    """Rows ``(option, value, purepg's value, source)`` of ``profile`` over every convention."""
    check_profile(profile)
    rows = []
    for name, c in CONVENTIONS.items():
        value = PROFILES[profile].get(name, c.used_by["purepg"][0])
        src = c.used_by.get(profile, c.used_by["purepg"])[1] if profile != "purepg" else c.used_by["purepg"][1]
        if profile not in c.used_by and profile != "purepg":
            src = "(not applicable: purepg's value kept)"
        rows.append((name, value, c.used_by["purepg"][0], src))
    return rows
