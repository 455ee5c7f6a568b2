"""Checks of a user's batch and update quantities: GAE and returns, the PPO clipped and KL-penalty
objectives with their gradients, the value loss, and one full PPO minibatch update (the solvers are in
:mod:`purepg.testing.solver_checks`).

Signatures (NumPy in, NumPy out; ``spec`` is a :class:`purepg.testing.PolicySpec`):

- ``gae(rew, v, v_next, terminated, truncated, gamma, gae_lambda) -> adv (T, E)``
- ``returns(rew, v_next, terminated, truncated, gamma) -> G (T, E)``
- ``ppo_clip(spec, theta, obs, act, logp_old, adv, clip_range) -> (loss, grad)``, ``loss = -L_clip``
- ``ppo_kl_penalty(spec, theta, obs, act, logp_old, adv, theta_old, beta) -> (loss, grad)``
- ``value_loss(v, target, v_old, clip_range) -> loss`` (``clip_range`` None: unclipped)
- ``ppo_update(spec, theta, m, v, t, obs, act, logp_old, adv, clip_range, lr, max_grad_norm) -> (theta, m, v)``

Tolerances are stated beside each check. "Losses" are minimised: the gradient returned is that of the loss.
"""
from __future__ import annotations

import numpy as np

from purepg.algos.common import normalize_advantage
from purepg.model.value import value_loss_terms
from purepg.optim import AdamState, adam_step, clip_grad_norm
from purepg.pg.returns import discounted_returns, gae
from purepg.pg.surrogates import ppo_clip, ppo_kl_penalty
from purepg.testing.policy_checks import POLICY_TOL, _cases
from purepg.testing.profiles import conventions
from purepg.testing.report import Tolerance, as_output, call_user, compare, run_property

# GAE sums at most T <= 8 terms of size <= 10 * 2: rounding below 1e-13 absolute.
RETURN_TOL = Tolerance(1e-10, 1e-10, "sums of at most 8 terms of size <= 20: rounding below 1e-13")


def _check(quantity, fn, cases, max_examples, expected, args, shapes):
    """Compare each output of ``fn(**args(case))`` (shapes ``shapes(case)``) with ``expected(case)``."""
    def body(case):
        shown = args(case)
        got = call_user(quantity, fn, shown, shown)
        ref = expected(case)
        outs = (got,) if len(ref) == 1 else tuple(got) if isinstance(got, (tuple, list)) else (got,)
        if len(outs) != len(ref):
            as_output("the output", quantity, None, (len(ref),), shown)
        for (name, want, tol), out, shape in zip(ref, outs, shapes(case)):
            compare(quantity, name, as_output(name, quantity, out, shape, shown), want, tol, shown)
    run_property(quantity, cases, body, max_examples)


def _episodes():
    import purepg.testing.strategies as S
    from hypothesis import strategies as st
    return st.tuples(S.episode_batches(), S.hyperparameters())


def check_gae(fn, *, max_examples=100):
    """GAE advantages: terminated steps bootstrap 0, truncated ones ``V`` of the final observation."""
    _check("gae", fn, _episodes(), max_examples,
           lambda c: [("adv", gae(c[0].rew, c[0].v, c[0].v_next, c[0].terminated, c[0].truncated,
                                  c[1]["gamma"], c[1]["gae_lambda"]).adv, RETURN_TOL)],
           lambda c: dict(rew=c[0].rew, v=c[0].v, v_next=c[0].v_next, terminated=c[0].terminated,
                          truncated=c[0].truncated, gamma=c[1]["gamma"], gae_lambda=c[1]["gae_lambda"]),
           lambda c: [c[0].rew.shape])


def check_returns(fn, *, max_examples=100):
    """Discounted returns, restarted at episode ends and bootstrapped at truncation and the batch end."""
    _check("returns", fn, _episodes(), max_examples,
           lambda c: [("G", discounted_returns(c[0].rew, c[0].terminated, c[0].truncated, c[0].v_next,
                                               c[1]["gamma"]), RETURN_TOL)],
           lambda c: dict(rew=c[0].rew, v_next=c[0].v_next, terminated=c[0].terminated, truncated=c[0].truncated,
                          gamma=c[1]["gamma"]),
           lambda c: [c[0].rew.shape])


def _objective_cases(second_theta=False, specs=None):
    """Policy cases with old log-probs, advantages and hyperparameters."""
    import purepg.testing.strategies as S
    from hypothesis import strategies as st

    policy_cases = _cases(specs, second_theta=second_theta)

    @st.composite
    def draw(d):
        case = d(policy_cases)
        logp = case["spec"].policy().log_prob(case["theta"], case["obs"], case["act"])
        case["logp_old"] = d(S.old_log_probs(logp))
        case["adv"] = d(S.advantages(logp.shape[0]))
        case["hp"] = d(S.hyperparameters())
        return case
    return draw()


def _pol_args(c, *names):
    return {"spec": c["spec"], "theta": c["theta"], "obs": c["obs"], "act": c["act"], "logp_old": c["logp_old"],
            "adv": c["adv"], **{k: c["hp"][k] for k in names}}


def check_ppo_clip(fn, *, specs=None, max_examples=50):
    """The clipped surrogate loss ``-L_clip`` and its gradient (PPO eq. 7; advantages as given)."""
    def expected(c):
        o = ppo_clip(c["spec"].policy(), c["theta"], c["obs"], c["act"], c["logp_old"], c["adv"],
                     eps=c["hp"]["clip_range"])
        return [("loss", np.asarray(-o.value), POLICY_TOL), ("grad", -o.grad, POLICY_TOL)]
    _check("ppo_clip", fn, _objective_cases(specs=specs), max_examples, expected,
           lambda c: _pol_args(c, "clip_range"), lambda c: [(), (c["spec"].policy().num_params,)])


def check_ppo_kl_penalty(fn, *, specs=None, max_examples=50):
    """The KL-penalised surrogate loss ``-(L - beta KL(pi_old || pi_theta))`` and its gradient."""
    def expected(c):
        o = ppo_kl_penalty(c["spec"].policy(), c["theta"], c["obs"], c["act"], c["logp_old"], c["adv"],
                           theta_old=c["theta_new"], beta=c["hp"]["beta"])
        return [("loss", np.asarray(-o.value), POLICY_TOL), ("grad", -o.grad, POLICY_TOL)]
    _check("ppo_kl_penalty", fn, _objective_cases(second_theta=True, specs=specs), max_examples, expected,
           lambda c: {**_pol_args(c, "beta"), "theta_old": c["theta_new"]},
           lambda c: [(), (c["spec"].policy().num_params,)])


def value_loss_reference(v, target, v_old, clip_range, profile="purepg"):
    """The value loss under a profile's conventions (:mod:`purepg.testing.profiles`), by purepg's
    :func:`purepg.model.value.value_loss_terms` (``1/2`` mean squared error; ``mse`` doubles it)."""
    cv = conventions(profile)
    clip = {} if clip_range is None else {"v_old": v_old, "clip_eps": clip_range}
    loss, _ = value_loss_terms(v, target, clip_style=cv.value_clip, **clip)
    return 2.0 * loss if cv.vf_loss == "mse" else loss


def check_value_loss(fn, *, profile="purepg", clipped=None, max_examples=100):
    """The value loss, unclipped (``clip_range=None``) and clipped, in the profile's form and scale."""
    import purepg.testing.strategies as S
    from hypothesis import strategies as st

    @st.composite
    def cases(d):
        n = d(S.batch_sizes())
        clip = d(st.none() | st.floats(0.01, 1.0)) if clipped is None else (d(st.floats(0.01, 1.0)) if clipped else None)
        return dict(v=d(S.st_vector(n, 10.0)), target=d(S.st_vector(n, 10.0)), v_old=d(S.st_vector(n, 10.0)),
                    clip_range=clip)
    _check("value_loss", fn, cases(), max_examples,
           lambda c: [("loss", np.asarray(value_loss_reference(**c, profile=profile)), RETURN_TOL)],
           lambda c: dict(c), lambda c: [()])


def ppo_update_reference(c, profile="purepg"):
    """One PPO minibatch step on the policy: standardised advantages, the clipped loss's gradient,
    global-norm clipping and Adam, under a profile's conventions."""
    cv, hp, pol = conventions(profile), c["hp"], c["spec"].policy()
    adv = normalize_advantage(c["adv"], cv.advantage_norm)
    o = ppo_clip(pol, c["theta"], c["obs"], c["act"], c["logp_old"], adv, eps=hp["clip_range"])
    g, _ = clip_grad_norm(-o.grad, hp["max_grad_norm"], offset=cv.grad_clip_offset)
    theta, st = adam_step(c["theta"], g, AdamState(c["m"], c["v"], c["t"]), lr=hp["lr"], eps=cv.adam_eps)
    return theta, st.m, st.v


def check_ppo_update(fn, *, profile="purepg", specs=None, max_examples=30):
    """One full PPO minibatch update of the policy (advantages standardised per the profile, gradient of the
    clipped loss, global-norm clipping, Adam from the given moments ``m``, ``v`` after ``t`` steps).

    Adam divides by ``sqrt(v_hat) + eps``: where ``v`` is tiny a rounding difference of ``g`` is amplified up
    to ``lr / eps``, so moments are drawn of the size a few earlier steps leave (``v >= 1e-6``).
    """
    import purepg.testing.strategies as S
    from hypothesis import strategies as st

    objective_cases = _objective_cases(specs=specs)

    @st.composite
    def cases(d):
        c = d(objective_cases)
        P = c["spec"].policy().num_params
        c["m"] = d(S.st_vector(P, 1.0))
        c["v"] = d(S.st_vector(P, 1.0).map(np.abs)) + 1e-6
        c["t"] = d(st.integers(0, 100))
        return c
    tol = Tolerance(1e-9, 1e-12, "Adam amplifies gradient rounding by at most lr / sqrt(v) <= 1e1")
    _check("ppo_update", fn, cases(), max_examples,
           lambda c: [(n, x, tol) for n, x in zip(("theta", "m", "v"), ppo_update_reference(c, profile))],
           lambda c: {**_pol_args(c, "clip_range", "lr", "max_grad_norm"), "m": c["m"], "v": c["v"], "t": c["t"]},
           lambda c: [(c["spec"].policy().num_params,)] * 3)
