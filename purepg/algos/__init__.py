"""The algorithms, one short module each; :func:`get_algo` finds one by its command-line name.

Each module defines ``NAME``, ``Config``, ``init`` and ``update`` (the interface is documented in
:mod:`purepg.run.runner`), and reads like the pseudocode of its paper, importing every primitive.
Every Config field carries its symbol, meaning, range and source (:mod:`purepg.algos.fields`): the
table of ``help(Config)``, ``purepg algos NAME`` and ``purepg train --algo NAME --help``.

Vocabulary
----------
One name per concept in every Config, on the command line, in progress.csv and in the code. Config
and CLI names are words (``--gae-lambda``); the functions of the math layers take the symbol
(``lam``, ``delta``, ``nu``), as their equations do.

=============================  ==========  ===================================  =================================
concept                        symbol      Config field / CLI option            state, progress.csv, functions
=============================  ==========  ===================================  =================================
environment copies             E           ``num_envs``
steps per copy per iteration   T           ``num_steps``                        batch of ``N = E T`` samples
discount                       gamma       ``gamma``
GAE parameter                  lambda      ``gae_lambda`` (all on-policy)       ``pg.returns.gae(..., lam)``
advantage standardisation      --          ``normalize_advantage``              ``common.normalize_advantage``
policy Adam step size          alpha       ``lr`` (``lr_final``: PPO schedule)
passes of the policy step      K           ``epochs`` (ppo, trpo-lagrangian,
per iteration                              offpolicy)
critic                         V           ``vf_hidden``, ``vf_lr``,            ``theta_v``, ``opt_v``
                                           ``vf_epochs``, ``vf_minibatch_size``,
                                           ``vf_coef`` (c_1), ``vf_clip`` (eps_v)
PPO clip range                 epsilon     ``clip`` (``clip_final``)            ``clip_range``, ``clip_fraction``
PPO early stop on the KL       d_stop      ``kl_stop`` (SB3's ``target_kl``)
PPO-KL target KL               d_targ      ``target_kl`` (ppo-kl)               ``update_beta(..., d_targ)``
PPO-KL penalty coefficient     beta        ``beta_init``, ``beta_min``,         state and column ``beta``
                                           ``beta_max``
trust-region KL radius         delta       ``delta`` (npg, trpo,                ``optim.natural_step(g, F, delta)``,
                                           trpo-lagrangian)                     ``backtracking_line_search(delta=)``
damping of F + c I             c           ``damping`` (npg, trpo)
Lagrange multiplier of the     nu          ``nu_init``, ``nu_lr`` (alpha_nu)    state ``nu``; columns ``nu``,
KL constraint                              (trpo-lagrangian)                    ``nu_next``; ``lagrangian(nu=)``,
                                                                                ``update_nu``
=============================  ==========  ===================================  =================================

``lambda`` is GAE's alone: the multiplier is ``nu``. Names of older run directories (``lam``,
``epsilon``, ``normalize_adv``, ``cg_damping``, ``pi_lr``, ...) are read and renamed by
:mod:`purepg.run.formats`.

The batch on its way through an update, one type per stage:

=============================  ================================================================================
``env.rollout.Batch``          what one rollout collected: (T, E, ...) arrays, time-major, with the done flags
``algos.common.Flat``          the batch flattened to ``N = T E`` samples with advantages, value targets, V(s);
                               PPO's minibatches are Flats of ``M`` rows (``ppo.minibatch``)
``pg.estimators.Steps``        whole trajectories concatenated to ``M`` steps (trajectory and time index of
                               each), the input of the estimators of :mod:`purepg.pg.estimators`
=============================  ================================================================================
"""
from __future__ import annotations

import difflib
import importlib

from purepg import _check

# command-line name -> module
ALGOS = {
    "reinforce": "purepg.algos.reinforce",
    "ppo": "purepg.algos.ppo",
    "ppo-kl": "purepg.algos.ppo_kl",
    "npg": "purepg.algos.npg",
    "trpo": "purepg.algos.trpo",
    "trpo-lagrangian": "purepg.algos.trpo_lagrangian",
    "offpolicy": "purepg.algos.offpolicy",
}


def _load(name):
    try:
        return importlib.import_module(ALGOS[name])
    except ModuleNotFoundError as e:
        if e.name == ALGOS[name]:
            return None
        raise


def available():
    """Names of the algorithms whose modules are present."""
    return [name for name in ALGOS if _load(name) is not None]


def get_algo(name):
    """The algorithm module for ``name``; ValueError with close matches if unknown."""
    mod = _load(name) if name in ALGOS else None
    if mod is None:
        close = difflib.get_close_matches(str(name), available(), n=3)
        _check.fail("algo", f"one of {', '.join(available())}", repr(name),
                    f"did you mean {', '.join(close)}?" if close else "pick one of those")
    return mod
