"""Sampling transitions from a gymnasium vector env into a time-major :class:`Batch`.

Layout
------
``E`` environment copies step in lock-step for ``T`` steps. Every array is time-major: index
``[t, e]`` is the transition that copy ``e`` made at step ``t`` of this batch,

    s_t = obs[t, e]  --a_t = act[t, e]-->  r_t = rew[t, e],  s'_t = final_obs[t, e]

with ``terminated[t, e]`` (a terminal state of the MDP was reached: no value after it) and
``truncated[t, e]`` (the episode was cut, e.g. by ``TimeLimit``: the value of ``s'_t`` still
counts, so returns bootstrap from ``V(final_obs[t, e])``). ``final_obs[t, e]`` is the true
observation after step ``t`` in every slot: where the episode went on it equals ``obs[t + 1, e]``
(or ``next_obs_last[e]`` for ``t = T - 1``); where it ended it is the observation it ended in,
while ``obs[t + 1, e]`` is already the first observation of the next episode. ``next_obs_last``
``(E, d)`` is the observation each copy is in after the batch (for bootstrapping the unfinished
episodes). ``logp_old[t, e] = log pi_theta(a_t | s_t)`` under the ``theta`` that sampled ``a_t``,
computed after the loop by one ``policy.log_prob`` call over all ``T * E`` rows (one forward pass
of a ``(T E, d)`` matrix instead of ``T`` small ones; ``log_prob`` is a pure function of
``(theta, obs, act)``, so the value is the same).

Every slot is a real transition: the reset step of ``NEXT_STEP`` autoreset never appears.

Autoreset handling
------------------
``collect`` reads ``vec_env.metadata["autoreset_mode"]`` (see ``purepg.env.envs``):

* ``SAME_STEP`` (what ``purepg.env.envs.make_vec_env`` builds): the step that ends copy ``e``'s
  episode already returns the first observation of the next one; the ended episode's last
  observation is ``info["final_obs"][e]``, which is stored in ``final_obs[t, e]``. A plain
  ``SyncVectorEnv`` in this mode has its copies stepped by ``collect`` itself (:func:`step_copies`:
  the same calls, the same results, the vector env left in the same state, less bookkeeping).
* ``NEXT_STEP`` or ``DISABLED`` on a ``SyncVectorEnv`` / ``AsyncVectorEnv``: right after a step
  that ends some episodes, ``collect`` calls ``reset(options={"reset_mask": done})``, which
  resets exactly those copies and clears their pending autoreset, so the *next* ``step`` is a real
  transition for every copy; the ended episode's last observation is what ``step`` returned.
  Other ``NEXT_STEP`` vector envs (e.g. ``CartPoleVectorEnv``) cannot reset one copy alone and
  are refused with a ``ValueError``: a fixed ``(T, E)`` batch of real transitions cannot be cut
  from them without masks.

Actions and observation normalisation
-------------------------------------
Gaussian actions are clipped to the action Box when sent to the env; the unclipped sample is
stored in ``act`` and scored by ``logp_old`` (clipping is part of the environment, not of the
policy, so ``pi_theta`` keeps its Gaussian density). With a normaliser in the state
(``purepg.env.normalize``), every observation the policy will act on is merged into the running
statistics when it arrives (one ``update`` per step with the ``(E, d)`` new observations, the
ended episodes' last observations are never acted on and are not merged) and is normalised with
the statistics right after that merge. ``obs``, ``final_obs`` and ``next_obs_last`` hold the
normalised values -- exactly what the policy saw, so ``logp_old`` is reproducible from the batch --
and ``obs_raw`` the raw ones. Episode returns always sum raw rewards.

Reward scaling
--------------
With a :class:`purepg.env.normalize.ReturnScale` in the state (``start(..., normalize_reward=True)``),
``rew`` holds every reward divided by the running standard deviation of the discounted returns
(``purepg.env.normalize``, eqs. (5)-(7)), updated step by step as the rewards arrive, and ``rew_raw`` the
environment's rewards; ``episode_returns`` always sum raw rewards.

Non-finite observations, rewards or sampled actions raise :class:`NonFiniteError` naming the
quantity, the env copy and the global step count, before they can reach any statistic.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from purepg.env import normalize as nz
from purepg import _check
from purepg._check import as_vector
from purepg.env.envs import check_spaces
from purepg.kernels.rollout import step_flags
from purepg.model.policy import Policy


class NonFiniteError(ValueError):
    """NaN or inf in an observation, reward or action during a rollout."""


@dataclasses.dataclass(frozen=True)
class Batch:
    """``T`` steps of ``E`` env copies, time-major (see the module docstring for the meaning).

    Attributes
    ----------
    obs : (T, E, d) float64              -- observation acted on (normalised if a normaliser is on)
    act : (T, E) int64 or (T, E, k) float64 -- action sampled (Gaussian: unclipped)
    rew : (T, E) float64
    terminated, truncated : (T, E) bool
    final_obs : (T, E, d) float64        -- observation after step t (the ended one where done)
    next_obs_last : (E, d) float64       -- observation after the last step
    logp_old : (T, E) float64            -- log pi_theta(act | obs) of the sampling theta
    obs_raw : (T, E, d) float64 or None  -- unnormalised obs when a normaliser is on, else None
    episode_returns : (K,) float64       -- undiscounted raw returns of the K episodes that ended
    episode_lengths : (K,) int64            in this batch, in order of ending (t, then e)
    rew_raw : (T, E) float64 or None     -- the environment's rewards when reward scaling is on
    """
    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    next_obs_last: np.ndarray
    logp_old: np.ndarray
    obs_raw: Optional[np.ndarray]
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    rew_raw: Optional[np.ndarray] = None

    def __post_init__(self):
        if np.ndim(self.obs) != 3:
            raise ValueError(f"obs: expected shape (T, E, d), got {np.shape(self.obs)}. "
                             f"Fix: stack observations time-major, one (E, d) slice per step.")
        T, E, d = np.shape(self.obs)
        expect = {"act": (T, E), "rew": (T, E), "terminated": (T, E), "truncated": (T, E),
                  "final_obs": (T, E, d), "next_obs_last": (E, d), "logp_old": (T, E)}
        if self.obs_raw is not None:
            expect["obs_raw"] = (T, E, d)
        if self.rew_raw is not None:
            expect["rew_raw"] = (T, E)
        for name, shape in expect.items():
            got = np.shape(getattr(self, name))
            if got[:len(shape)] != shape or (name != "act" and len(got) != len(shape)):
                raise ValueError(f"{name}: expected shape {shape} (from obs {(T, E, d)}), "
                                 f"got {got}. Fix: build all Batch fields from the same rollout.")

    @property
    def num_steps(self):
        """``T``."""
        return self.obs.shape[0]

    @property
    def num_envs(self):
        """``E``."""
        return self.obs.shape[1]


class RolloutState(NamedTuple):
    """What ``collect`` carries from one batch to the next.

    Attributes
    ----------
    obs_raw : (E, d) float64   -- current raw observation of each copy
    ep_return : (E,) float64   -- raw return of each copy's running episode so far
    ep_length : (E,) int64     -- steps of each copy's running episode so far
    norm : RunningStats or None -- observation statistics (None: no normalisation)
    step_count : int           -- environment steps taken so far, summed over copies
    rscale : ReturnScale or None -- reward scaling (None: raw rewards)
    """
    obs_raw: np.ndarray
    ep_return: np.ndarray
    ep_length: np.ndarray
    norm: Optional[nz.RunningStats]
    step_count: int
    rscale: Optional[nz.ReturnScale] = None


def _finite(x, what, step):
    """Raise :class:`NonFiniteError` naming the first copy whose ``x`` row is not finite."""
    bad = ~np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)      # (E,)
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        raise NonFiniteError(f"{what}: expected finite values, got {x[e]} from env {e} at global step "
                             f"{step}; the batch was discarded. Fix: check the environment (or, "
                             f"for an action, the policy parameters theta).")


def start(vec_env, *, seed=None, normalize_obs=False, normalize_reward=False, gamma=None):
    """Reset every copy and return the initial :class:`RolloutState`.

    Parameters
    ----------
    vec_env : gymnasium.vector.VectorEnv
    seed : int or None
        Passed to ``vec_env.reset``; ``None`` continues the env's own generators (already seeded
        by ``purepg.env.envs.make_vec_env``).
    normalize_obs : bool
        Keep running observation statistics (merged with the initial observations).
    normalize_reward : bool
        Scale rewards by the running std of the discounted return (module docstring).
    gamma : float
        The discount of that return; required with ``normalize_reward``.
    """
    if normalize_reward and gamma is None:
        raise ValueError("gamma: expected the discount factor for reward scaling, got None. Fix: pass "
                         "gamma=config.gamma with normalize_reward=True.")
    check_spaces(vec_env.single_observation_space, vec_env.single_action_space, name=str(vec_env))
    x, _ = vec_env.reset(seed=seed)
    x = np.asarray(x, dtype=np.float64)                              # (E, d)
    _finite(x, "observation", 0)
    E = x.shape[0]
    norm = nz.update(nz.init(x.shape[1]), x) if normalize_obs else None
    rscale = nz.return_scale_init(E, gamma) if normalize_reward else None
    return RolloutState(x, np.zeros(E), np.zeros(E, dtype=np.int64), norm, 0, rscale)


def state_to_dict(state):
    """:class:`RolloutState` as ``{name: ndarray}`` for a checkpoint (``numpy.savez``-able)."""
    out = {"obs_raw": state.obs_raw.copy(), "ep_return": state.ep_return.copy(),
           "ep_length": state.ep_length.copy(), "step_count": np.array(state.step_count, np.int64)}
    if state.norm is not None:
        out.update({f"norm_{k}": v for k, v in nz.to_dict(state.norm).items()})
    if state.rscale is not None:
        out.update({f"rscale_{k}": v for k, v in nz.return_scale_to_dict(state.rscale).items()})
    return out


def state_from_dict(d):
    """Inverse of :func:`state_to_dict`; ``ValueError`` naming a missing or malformed field."""
    for key in ("obs_raw", "ep_return", "ep_length", "step_count"):
        if key not in d:
            raise ValueError(f"d: expected the rollout-state fields obs_raw, ep_return, ep_length, "
                             f"step_count, got keys {sorted(d)} ({key!r} is missing). "
                             f"Fix: save it with purepg.env.rollout.state_to_dict.")
    x = np.asarray(d["obs_raw"], dtype=np.float64)
    ret, length = np.asarray(d["ep_return"], np.float64), np.asarray(d["ep_length"], np.int64)
    if x.ndim != 2 or ret.shape != (x.shape[0],) or length.shape != (x.shape[0],):
        raise ValueError(f"d: expected fields obs_raw (E, d), ep_return (E,), ep_length (E,), got "
                         f"shapes {x.shape}, {ret.shape}, {length.shape}. Fix: the checkpoint is "
                         f"corrupt; save it again with purepg.env.rollout.state_to_dict.")
    has_norm = any(k.startswith("norm_") for k in d)
    norm = nz.from_dict({k[5:]: v for k, v in d.items() if k.startswith("norm_")}) if has_norm else None
    has_rscale = any(k.startswith("rscale_") for k in d)
    rscale = (nz.return_scale_from_dict({k[7:]: v for k, v in d.items() if k.startswith("rscale_")})
              if has_rscale else None)
    if rscale is not None and rscale.ret.shape != ret.shape:
        raise ValueError(f"d: expected rscale_ret of shape {ret.shape} (one per copy), got {rscale.ret.shape}. "
                         f"Fix: the checkpoint is corrupt; save it again with purepg.env.rollout.state_to_dict.")
    return RolloutState(x.copy(), ret.copy(), length.copy(), norm, int(np.asarray(d["step_count"])), rscale)


def _check_call(vec_env, policy, T, rng, state):
    """Bad-input checks of :func:`collect`; returns the autoreset mode."""
    _check.positive_int(T, "T", "pass the steps per copy, e.g. T=128")
    _check.generator(rng)
    if not isinstance(state, RolloutState):
        raise TypeError(f"state: expected a RolloutState, got {type(state).__name__}. "
                        f"Fix: create it with purepg.env.rollout.start(vec_env).")
    obs_sp, act_sp = vec_env.single_observation_space, vec_env.single_action_space
    check_spaces(obs_sp, act_sp, name=str(vec_env))
    if state.obs_raw.shape != (vec_env.num_envs, obs_sp.shape[0]):
        raise ValueError(f"state: expected obs_raw of shape {(vec_env.num_envs, obs_sp.shape[0])} for "
                         f"this vec_env, got {state.obs_raw.shape}. Fix: start it from this vec_env.")
    discrete = isinstance(act_sp, spaces.Discrete)
    want = (obs_sp.shape[0], discrete, int(act_sp.n) if discrete else act_sp.shape[0])
    got = (policy.obs_dim, bool(policy.discrete),
           policy.n_actions if policy.discrete else policy.act_dim)
    if got != want:
        raise ValueError(f"policy: expected (obs_dim, discrete, n_actions or act_dim) = {want} for the "
                         f"env's spaces {obs_sp} / {act_sp}, got {got}. Fix: build the policy from "
                         f"the env's spaces.")
    mode = vec_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.SAME_STEP and not isinstance(vec_env.unwrapped, (SyncVectorEnv, AsyncVectorEnv)):
        raise ValueError(f"vec_env: expected SAME_STEP autoreset or a Sync/AsyncVectorEnv, got {mode} "
                         f"on {type(vec_env.unwrapped).__name__}, which cannot reset one copy alone. "
                         f"Fix: build it with purepg.env.envs.make_vec_env(..., vectorization='auto').")
    return mode


_SYNC_STATE = ("envs", "_env_obs", "_observations", "_rewards", "_terminations", "_truncations", "_autoreset_envs")


def steps_copies(vec_env):
    """Whether :func:`collect` steps ``vec_env``'s copies itself (:func:`step_copies`): a gymnasium
    ``SyncVectorEnv`` itself (no vector wrapper around it, ``step`` not replaced on the instance) in
    same-step autoreset mode, with the buffers of its ``step`` (float64 rewards, bool flags). Any other
    vector env is stepped by its own ``step``."""
    return (type(vec_env) is SyncVectorEnv and "step" not in vars(vec_env)
            and vec_env.metadata.get("autoreset_mode") == AutoresetMode.SAME_STEP
            and getattr(vec_env, "autoreset_mode", None) == AutoresetMode.SAME_STEP
            and all(hasattr(vec_env, k) for k in _SYNC_STATE)
            and vec_env._rewards.dtype == np.float64 and vec_env._terminations.dtype == np.bool_
            and vec_env._truncations.dtype == np.bool_)


def step_copies(vec_env, a_env):
    """``vec_env.step(a_env)`` of a same-step-autoreset ``SyncVectorEnv`` (:func:`steps_copies`), its copies
    stepped here: ``(obs, r, term, trunc, final_obs)``, ``final_obs[e]`` the last observation of copy
    ``e``'s ended episode.

    The same calls as the vector env's ``step`` makes, in the same order: copy ``e`` gets ``a_env[e]``
    (what iterating the batch of actions gives), and a copy whose episode ended is reset right after its
    step, before the next copy steps. The results land in the vector env's own buffers, as its ``step``
    leaves them (the copies' observations in its observation batch, their rewards and flags, which
    copies ended), so the vector env is in the same state afterwards and a checkpoint of it
    (:func:`purepg.env.envs.get_env_state`) is the same. What is skipped is the rest of its ``step``: the
    info dicts merged per copy (a rollout reads only the final observations), and the copies of the
    batches it returns (taken here only of what is returned). A rollout step of 8 CartPole-v1 copies
    spends ~30 us less, of 2 copies ~14 us (``bench/README.md``).
    """
    x, r, term, trunc = vec_env._observations, vec_env._rewards, vec_env._terminations, vec_env._truncations
    final_obs = {}
    for e, env in enumerate(vec_env.envs):
        o, r_e, term_e, trunc_e, _ = env.step(a_env[e])
        r[e], term[e], trunc[e] = r_e, term_e, trunc_e
        if term_e or trunc_e:
            final_obs[e] = o                                     # the ended episode's last observation
            o, _ = env.reset()
        vec_env._env_obs[e] = o
        x[e] = o                                                 # the observation batch, in the space's dtype
    vec_env._autoreset_envs = np.logical_or(term, trunc)
    return x, r.copy(), term.copy(), trunc.copy(), final_obs


def _step(vec_env, mode, a_env, step, direct=False):
    """One vector step with the autoreset resolved: ``(x_next, x_final, r, term, trunc, ended)``.

    ``x_next`` (E, d) is what each copy acts on next, ``x_final`` (E, d) the true next observation
    of the transition (the ended episode's last observation where it ended; ``x_next`` itself if no
    episode ended), ``ended`` the indices of the copies whose episode ended. ``direct``: the copies are
    stepped by :func:`step_copies` (:func:`steps_copies` holds).
    """
    if direct:                                                      # r float64, term and trunc bool: copies
        x, r, term, trunc, final_obs = step_copies(vec_env, a_env)
        x = np.array(x, dtype=np.float64)                           # (E, d)
    else:
        x, r, term, trunc, info = vec_env.step(a_env)
        final_obs = info.get("final_obs")
        x, r = np.array(x, dtype=np.float64), np.asarray(r, dtype=np.float64)  # (E, d), (E,)
        term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)  # (E,), (E,)
    finite, any_done = step_flags(x, r, term, trunc)               # one cheap pass; the messages name the copy
    if not finite:
        _finite(r[:, None], "reward", step)
        _finite(x, "observation", step)
    if not any_done:
        return x, x, r, term, trunc, ()
    done = term | trunc                                             # (E,)
    x_final = x.copy()                                              # (E, d)
    ended = np.flatnonzero(done)
    if mode == AutoresetMode.SAME_STEP:
        for e in ended:
            x_final[e] = final_obs[e]
    else:
        x_reset, _ = vec_env.reset(options={"reset_mask": done})
        x[done] = np.asarray(x_reset, dtype=np.float64)[done]
    _finite(x_final, "final observation", step)
    _finite(x, "observation", step)
    return x, x_final, r, term, trunc, ended


def _act(sample, policy, o, rng, act_sp, step, trusted):
    """Sample ``a`` (E,) int64 or (E, k) float64 and the action sent to the env (clipped Box).

    ``sample(o, rng)`` draws the actions: :meth:`~purepg.model.policy.Policy.sampler` of a purepg policy
    (``trusted``: its ``theta`` was validated by :func:`collect`, and ``o`` (E, d) float64 was checked at
    arrival, so nothing is re-validated), else the policy's own ``sample`` with its checks.
    """
    if trusted and policy.discrete:                                  # int64 (E,) by the Policy's construction
        a = sample(o, rng)
        return a, a
    E = o.shape[0]
    a = np.asarray(sample(o, rng))
    want = (E,) if policy.discrete else (E, act_sp.shape[0])
    if a.shape != want:
        raise ValueError(f"policy: expected policy.sample to return shape {want}, got {a.shape}. "
                         f"Fix: sample one action per observation row (purepg's policy contract).")
    if policy.discrete:
        a = a.astype(np.int64, copy=False)                           # (E,): stored and sent (never written)
        return a, a
    a = a.astype(np.float64)                                         # (E, k)
    _finite(a, "action", step)
    return a, np.clip(a, act_sp.low, act_sp.high)                    # stored, sent


def _assemble(cols, o_last, raw, ep_ret, ep_len, policy, theta, rew_raw):
    """Stack the per-step columns into a :class:`Batch`; ``logp_old`` in one call over all rows."""
    st = np.stack
    obs, act = st(cols["obs"]), st(cols["act"])                      # (T, E, d), (T, E[, k])
    T, E = act.shape[:2]
    logp = policy.log_prob(theta, obs.reshape(T * E, -1), act.reshape(T * E, *act.shape[2:]))
    return Batch(obs=obs, act=act, rew=st(cols["rew"]),
                 terminated=st(cols["term"]), truncated=st(cols["trunc"]), final_obs=st(cols["fin"]),
                 next_obs_last=o_last, logp_old=np.asarray(logp, dtype=np.float64).reshape(T, E),
                 obs_raw=st(cols["raw"]) if raw else None,
                 episode_returns=np.array(ep_ret, dtype=np.float64),
                 episode_lengths=np.array(ep_len, dtype=np.int64),
                 rew_raw=st(rew_raw) if rew_raw is not None else None)


def collect(vec_env, policy, theta, T, rng, state, *, update_norm=True):
    """Run ``T`` steps of every copy with ``pi_theta``; return ``(Batch, new state)``.

    Parameters
    ----------
    vec_env : gymnasium.vector.VectorEnv
        ``E`` copies (see the module docstring for the supported autoreset modes).
    policy : object
        ``policy.sample(theta, obs, rng)``, ``policy.log_prob(theta, obs, act)``, ``policy.discrete``,
        ``policy.obs_dim`` and ``policy.n_actions`` / ``policy.act_dim`` (purepg's policy contract).
    theta : ndarray, shape (P,)
    T : int
        Steps per copy.
    rng : numpy.random.Generator
        Action sampling (one ``policy.sample`` call per step).
    state : RolloutState
        From :func:`start` or the previous ``collect``.
    update_norm : bool
        Merge new observations into the normaliser, and new returns into the reward-scaling
        statistics (False: frozen statistics, e.g. evaluation).

    Returns
    -------
    Batch, RolloutState
    """
    mode = _check_call(vec_env, policy, T, rng, state)
    direct = steps_copies(vec_env)                                   # step the copies here (same calls, state)
    trusted = isinstance(policy, Policy)
    if trusted:
        theta = as_vector(theta, policy.num_params, "theta", hint=f"pass a flat vector of length "
                          f"policy.num_params = {policy.num_params}")
        sample = policy.sampler(theta)                               # one compiled pass per step (categorical)
    else:
        sample = lambda o, rng: policy.sample(theta, o, rng)         # noqa: E731
    norm, rscale, E = state.norm, state.rscale, state.obs_raw.shape[0]
    see = (lambda x: x) if norm is None else (lambda x: nz.normalize(norm, x))  # reads current norm
    ret, length, step = state.ep_return.copy(), state.ep_length.copy(), state.step_count
    x = state.obs_raw                                                # (E, d) raw
    o = see(x)                                                       # (E, d) what the policy sees
    cols = {k: [] for k in ("obs", "raw", "act", "rew", "term", "trunc", "fin")}
    put = tuple(c.append for c in cols.values())                     # one append per column and step
    ep_ret, ep_len = [], []
    rew_raw = [] if rscale is not None else None
    for _ in range(int(T)):
        a, a_env = _act(sample, policy, o, rng, vec_env.single_action_space, step, trusted)
        x_next, x_fin, r, term, trunc, ended = _step(vec_env, mode, a_env, step + E, direct)
        if norm is not None and update_norm:
            norm = nz.update(norm, x_next)
        r_learn = r
        if rscale is not None:                                       # eqs. (5)-(7) of purepg.env.normalize
            rew_raw.append(r)
            rscale, r_learn = nz.scale_rewards(rscale, r, term | trunc, frozen=not update_norm)
        for append, v in zip(put, (o, x, a, r_learn, term, trunc, see(x_fin))):
            append(v)
        step += E
        ret += r                                                     # (E,) in place: ret is this call's copy
        length += 1
        for e in ended:                                              # episodes that ended at this step
            ep_ret.append(ret[e])
            ep_len.append(length[e])
            ret[e], length[e] = 0.0, 0
        x, o = x_next, see(x_next)
    batch = _assemble(cols, o, norm is not None, ep_ret, ep_len, policy, theta, rew_raw)
    return batch, RolloutState(x, ret, length, norm, step, rscale)
