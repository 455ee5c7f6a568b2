r"""Golden vectors: reference values for checking another implementation against purepg.

:func:`write_golden` writes one ``.npz`` file (load it with ``numpy.load``) holding, for fixed seeds,
two small policies, one batch, and every quantity of the math pages (docs/math/) that purepg computes on them. Another
implementation (PyTorch, JAX, ...) loads the parameters, recomputes each quantity and compares; the
PyTorch version of that comparison is ``tests/test_golden_torch.py`` (and ``docs/verify.md``).

What is in the file
-------------------
Keys are ``section/name``; every 0-d entry is a structural constant, so the file describes itself.

*Global*: ``format`` (:data:`FORMAT`), ``purepg_version``, ``seed``, ``layout`` and ``conventions``
(the two paragraphs below, as text), and the constants ``clip_eps`` (PPO ``eps``), ``beta`` (PPO KL
penalty), ``damping`` (``c``), ``cg_iters``, ``natural_eps`` (the KL radius ``delta`` of the
natural step).

*Batch* (``batch/``), time-major ``(T, E)`` = (:data:`T`, :data:`E`): ``rew``, ``terminated``,
``truncated`` (bool), ``v`` = ``V(s_t)``, ``v_next`` = the value of the state after step ``t`` (the
next state inside an episode, the final state where one ended), ``gamma``, ``lam``. Then ``gae/adv``
and ``gae/ret`` (:func:`purepg.pg.returns.gae`, Schulman et al. 2016, eqs. 11-16)::

    delta_t = r_t + gamma (1 - terminated_t) v_next_t - v_t
    A_t     = delta_t + gamma lam (1 - done_t) A_{t+1},   done = terminated | truncated,  A_T = 0
    ret_t   = A_t + v_t

*Per policy* (sections ``cat/``: categorical, obs 4, 3 actions, hidden (8, 8), tanh; ``gauss/``:
diagonal Gaussian, obs 3, act 2, hidden (8,), tanh). Structure: ``sizes``, ``activation``,
``distribution``, ``num_params`` ``P``. Data, ``N = T E`` samples in time-major order (sample
``t E + e``): ``theta`` (P,), ``theta_new`` (P,) (a perturbation of ``theta``), ``obs`` (N, d), ``act``
(int64 (N,) or float64 (N, A), drawn from ``pi_theta``), ``logp_old`` = ``log pi_theta(a|s)``, ``adv``
= ``gae/adv`` flattened, ``v`` (P,) (an arbitrary direction). Results:

=====================  =========  ==============================================================
key                    shape      definition (purepg function)
=====================  =========  ==============================================================
logp_new               (N,)       ``log pi_theta_new(a_i|s_i)``                (``log_prob``)
score                  (N, P)     ``grad_theta log pi_theta(a_i|s_i)``          (``score``)
entropy                (N,)       ``H(pi_theta(.|s_i))``                        (``entropy``)
entropy_grad           (P,)       gradient of the mean entropy                 (``entropy_grad``)
kl                     ()         ``D = mean_i KL(pi_theta(.|s_i) || pi_theta_new(.|s_i))``  (``kl``)
kl_grad                (P,)       ``grad_theta_new D``                          (``kl_grad``)
fisher                 (P, P)     ``F`` = Hessian of ``D`` at ``theta_new = theta``  (``fisher``)
fvp                    (P,)       ``F v``                                       (``fvp``)
pg                     (P,)       ``g = (1/N) sum_i A_i score_i``, the surrogate gradient at ``theta``
cg_x                   (P,)       ``cg_iters`` CG steps on ``(F + c I) x = g`` from ``x_0 = 0``, no
                                  early stop (``optim.conjugate_gradient(..., tol=0)``)
natural_step           (P,)       ``sqrt(2 delta / x^T (F + c I) x) x`` with ``x = cg_x`` (``natural_step``)
ppo_clip               ()         ``(1/N) sum_i min(r_i A_i, clip(r_i, 1-eps, 1+eps) A_i)`` at theta_new,
                                  ``r_i = exp(logp_new_i - logp_old_i)``        (``surrogates.ppo_clip``)
ppo_clip_grad          (P,)       its gradient w.r.t. theta_new
ppo_clip_fraction      ()         ``mean(|r_i - 1| > eps)``
ppo_kl_penalty         ()         ``(1/N) sum_i r_i A_i - beta D``  at theta_new  (``surrogates.ppo_kl_penalty``)
ppo_kl_penalty_grad    (P,)       its gradient w.r.t. theta_new
=====================  =========  ==============================================================

Determinism
-----------
The random inputs come from ``numpy.random.default_rng([seed, k])``, one stream per section ``k``, so
the file is a function of ``seed`` (and of purepg's arithmetic). It is written as an uncompressed zip
with a fixed timestamp and a fixed entry order (:func:`purepg.run.npz.archive`; ``numpy.savez`` would
stamp the current time), so two invocations write identical bytes.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from purepg import __version__, _check

from purepg.run import checkpoint, npz
from purepg.optim import conjugate_gradient, natural_step
from purepg.model.policy import CategoricalPolicy, GaussianPolicy
from purepg.pg.returns import gae
from purepg.pg.surrogates import ppo_clip, ppo_kl_penalty, surrogate

FORMAT = "purepg-golden-1"
SEED = 20240601
T, E = 6, 2                      # batch: T steps of E environment copies, N = T E = 12 samples
CLIP_EPS, BETA = 0.2, 0.5        # PPO eq. 7 and eq. 8
DAMPING, CG_ITERS, NATURAL_EPS = 0.1, 10, 0.01
GAMMA, LAM = 0.99, 0.95
THETA_NOISE = 0.5                     # theta = init + 0.5 z: outputs far from the near-uniform init
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)     # the earliest zip timestamp: fixed, so the bytes are reproducible

LAYOUT = ("theta = for each nn.Linear of nn.Sequential(Linear(d0, d1), act, ..., Linear(d_{L-1}, dL)) in order: "
          "weight (d_out, d_in) row-major, then bias (d_out,) -- torch.nn.utils.parameters_to_vector; a Gaussian "
          "policy appends log_std (act_dim,). Categorical: the network outputs logits. Gaussian: it outputs the "
          "mean, sigma = exp(log_std), log-prob and entropy summed over action dimensions.")
CONVENTIONS = ("Objectives (ppo_clip, ppo_kl_penalty, pg) are maximised and their *_grad are gradients of the "
               "objective (a PyTorch loss is minus the objective). kl = mean over the N states of "
               "KL(pi_theta || pi_theta_new); kl_grad is w.r.t. theta_new. fisher = exact E_s E_a[score score^T]. "
               "Samples are time-major: row t*E + e of obs is batch entry (t, e). Advantages are not normalised.")

# section -> (distribution, policy arguments, scale of theta_new - theta). The step scales put, at the
# default seed, ratios inside [1 - eps, 1 + eps], clipped (zero gradient) and outside-but-active ones
# in the PPO batch of each policy (4/4/4 and 7/2/3 of 12), so the clip gradient is fully exercised.
_POLICIES = {"cat": ("categorical", dict(obs_dim=4, n_actions=3, hidden=(8, 8), activation="tanh"), 0.15),
             "gauss": ("diag_gaussian", dict(obs_dim=3, act_dim=2, hidden=(8,), activation="tanh",
                                             log_std_init=-0.5), 0.06)}


def _policy(kind, kw):
    return CategoricalPolicy(**kw) if kind == "categorical" else GaussianPolicy(**kw)


def _batch(rng):
    """Rewards, flags and values of a (T, E) batch, and its GAE(gamma, lam) advantages and returns."""
    rew = rng.normal(size=(T, E))                                            # (T, E)
    terminated = np.zeros((T, E), dtype=bool)
    truncated = np.zeros((T, E), dtype=bool)
    terminated[2, 0] = terminated[T - 1, 1] = True      # one mid-batch, one at the batch end (no bootstrap)
    truncated[3, 1] = True                              # a time limit: bootstrapped with V(final state)
    v = rng.normal(size=(T, E))                                              # (T, E)
    v_next = np.empty((T, E))
    v_next[:-1] = v[1:]                                 # inside an episode the next state is s_{t+1}
    ended = terminated | truncated
    ended[-1] = True                                    # the batch end and every ended episode ...
    v_next[ended] = rng.normal(size=int(ended.sum()))   # ... have their own (final-state) value
    adv, ret = gae(rew, v, v_next, terminated, truncated, GAMMA, LAM)
    return {"batch/rew": rew, "batch/terminated": terminated, "batch/truncated": truncated, "batch/v": v,
            "batch/v_next": v_next, "batch/gamma": GAMMA, "batch/lam": LAM, "gae/adv": adv, "gae/ret": ret}


def _structure(p, kind, pol):
    return {f"{p}/distribution": kind, f"{p}/sizes": np.array(pol.net.sizes, dtype=np.int64),
            f"{p}/activation": pol.net.activation, f"{p}/num_params": pol.num_params}


def _inputs(pol, rng, adv, step_noise):
    """theta, theta_new, obs, actions drawn at theta, their log-probs, advantages and a direction v."""
    P = pol.num_params
    theta = pol.init(rng) + THETA_NOISE * rng.standard_normal(P)            # (P,)
    theta_new = theta + step_noise * rng.standard_normal(P)                  # (P,)
    obs = rng.normal(size=(T * E, pol.obs_dim))                              # (N, d)
    act = pol.sample(theta, obs, rng)                                        # (N,) or (N, A)
    return {"theta": theta, "theta_new": theta_new, "obs": obs, "act": act,
            "logp_old": pol.log_prob(theta, obs, act), "adv": adv.reshape(-1), "v": rng.standard_normal(P)}


def _results(pol, x):
    """Every quantity of the table in the module docstring, from the inputs ``x``."""
    th, th1, obs, act, lp, A = x["theta"], x["theta_new"], x["obs"], x["act"], x["logp_old"], x["adv"]
    fvp = lambda u: pol.fvp(th, obs, u)                                      # noqa: E731  u -> F u
    g = surrogate(pol, th, obs, act, lp, A).grad                             # (P,)  r = 1 at theta
    cg = conjugate_gradient(fvp, g, iters=CG_ITERS, tol=0.0, damping=DAMPING)
    nat = natural_step(g, fvp, NATURAL_EPS, damping=DAMPING, solver="cg", cg_iters=CG_ITERS, cg_tol=0.0)
    if not nat.ok:   # cannot happen for F + c I with c > 0; say so rather than write a zero step
        raise RuntimeError(f"golden: the natural step failed ({nat.reason}); this is a purepg bug")
    clip = ppo_clip(pol, th1, obs, act, lp, A, eps=CLIP_EPS)
    pen = ppo_kl_penalty(pol, th1, obs, act, lp, A, theta_old=th, beta=BETA)
    return {"logp_new": pol.log_prob(th1, obs, act), "score": pol.score(th, obs, act),
            "entropy": pol.entropy(th, obs), "entropy_grad": pol.entropy_grad(th, obs),
            "kl": pol.kl(th, th1, obs), "kl_grad": pol.kl_grad(th, th1, obs),
            "fisher": pol.fisher(th, obs), "fvp": pol.fvp(th, obs, x["v"]), "pg": g,
            "cg_x": cg.x, "natural_step": nat.step,
            "ppo_clip": clip.value, "ppo_clip_grad": clip.grad, "ppo_clip_fraction": clip.clip_fraction,
            "ppo_kl_penalty": pen.value, "ppo_kl_penalty_grad": pen.grad}


def golden_vectors(seed: int = SEED) -> dict:
    """The golden entries (see the module docstring) as ``{key: ndarray}``, in file order.

    Parameters
    ----------
    seed : int, >= 0
        Root of the random streams; the default :data:`SEED` is the published file.

    Returns
    -------
    dict
        ``str -> numpy.ndarray`` (0-d arrays for scalars and strings).
    """
    _check.integer(seed, "seed", 0, f"pass e.g. {SEED}")
    out = {"format": FORMAT, "purepg_version": __version__, "seed": int(seed), "layout": LAYOUT,
           "conventions": CONVENTIONS, "clip_eps": CLIP_EPS, "beta": BETA, "damping": DAMPING,
           "cg_iters": CG_ITERS, "natural_eps": NATURAL_EPS}
    out.update(_batch(np.random.default_rng([seed, 0])))
    for k, (p, (kind, kw, step_noise)) in enumerate(_POLICIES.items(), start=1):
        pol = _policy(kind, kw)
        x = _inputs(pol, np.random.default_rng([seed, k]), out["gae/adv"], step_noise)
        out.update(_structure(p, kind, pol))
        out.update({f"{p}/{name}": v for d in (x, _results(pol, x)) for name, v in d.items()})
    return {k: np.asarray(v) for k, v in out.items()}


def policy_from(vectors: dict, p: str):
    """The purepg policy described by section ``p`` (``"cat"`` or ``"gauss"``) of a golden dict."""
    if p not in _POLICIES:
        raise ValueError(f"p: expected one of {', '.join(map(repr, _POLICIES))}, got {p!r}. Fix: pick one of those")
    sizes = tuple(int(d) for d in vectors[f"{p}/sizes"])
    kind, kw, _ = _POLICIES[p]
    kw = dict(kw, hidden=sizes[1:-1], activation=str(vectors[f"{p}/activation"]))
    return _policy(kind, kw)


def to_bytes(vectors: dict) -> bytes:
    """An ``.npz`` (uncompressed zip of ``.npy`` files) of ``vectors`` with fixed timestamps."""
    return npz.archive({key: np.asarray(v) for key, v in vectors.items()}, date_time=_ZIP_TIME)


def write_golden(path, seed: int = SEED) -> str:
    """Write :func:`golden_vectors` to ``path`` (an ``.npz``, written atomically); return ``path``.

    Two calls with the same ``seed`` write identical bytes.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"path: the directory {d} does not exist (got {path!r}). "
                                f"Fix: create it first, or write to an existing directory")
    checkpoint.atomic_write_bytes(path, to_bytes(golden_vectors(seed)))
    return path


def read_golden(path) -> dict:
    """Load a golden file: ``{key: ndarray}``. ValueError if it is not a golden file of this format."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        _check.fail("path", "a readable .npz", f"{path} ({type(e).__name__}: {e})",
                    f"regenerate it with purepg golden --out {path}")
    fmt = str(out.get("format", "<missing>"))
    if fmt != FORMAT:
        _check.fail("path", f"golden vectors of format {FORMAT!r}", f"{path} of format {fmt!r}",
                    f"regenerate it with this purepg version (purepg golden --out {path})")
    return out
