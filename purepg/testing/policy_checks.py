"""Checks of a user's policy quantities: log-prob, entropy, KL (both directions), per-sample score, and the
Fisher-vector product.

Each check takes the user's callable in NumPy-in / NumPy-out form, receiving a
:class:`purepg.testing.PolicySpec` first (build your network from it, or ignore it if your code is
fixed-shape and pass ``specs=[your spec]``), then float64 arrays in purepg's layout.

Tolerances. Both sides evaluate the same float64 expressions in a different order. With the strategies'
bounds (weights in [-2, 2], observations in [-3, 3], widths <= 6, so every pre-activation is below 38 in
size) a forward pass loses at most a few hundred ulp; log-probabilities and entropies are O(10) and
scores O(100), so ``rtol = 1e-9`` with ``atol = 1e-10`` leaves three orders of margin over rounding while
any error of the formula (a missing term, a wrong sign or direction, a float32 step) exceeds it by far.
"""
from __future__ import annotations

import numpy as np

from purepg.testing.report import Tolerance, as_output, call_user, compare, run_property

POLICY_TOL = Tolerance(1e-9, 1e-10, "float64 both sides; rounding of a bounded forward pass is below 1e-12")
FVP_TOL = Tolerance(1e-8, 1e-10, "F v sums N (P,) vectors of size O(1e3): rounding below 1e-12 relative")


def _cases(specs, with_act=True, second_theta=False, vector=False):
    """Strategy of dict cases ``spec, theta[, theta_new], obs[, act][, v]``."""
    from hypothesis import strategies as st

    import purepg.testing.strategies as S

    spec_st = st.sampled_from(list(specs)) if specs else S.policy_specs()

    @st.composite
    def draw_case(draw):
        spec = draw(spec_st)
        pol = spec.policy()
        case = {"spec": spec, "theta": _theta(draw, pol)}
        if second_theta:
            case["theta_new"] = _theta(draw, pol)
        n = draw(S.batch_sizes())
        case["obs"] = draw(S.observations(n, pol.obs_dim))
        if with_act:
            case["act"] = draw(S.discrete_actions(n, pol.act_dim) if pol.discrete else S.box_actions(n, pol.act_dim))
        if vector:
            case["v"] = draw(S.st_vector(pol.num_params, 1.0))
        return case
    return draw_case()


def _theta(draw, pol):
    """Network weights in [-2, 2], then a Gaussian policy's log-std in [-1.5, 1]."""
    import purepg.testing.strategies as S
    net = draw(S.thetas(pol.net.num_params))
    return net if pol.discrete else np.concatenate([net, draw(S.log_stds(pol.act_dim))])


def _policy_check(quantity, fn, specs, max_examples, ref, shape, args, tol=POLICY_TOL, **case_kw):
    """Draw cases, compare ``fn(**args(case))`` of ``shape(pol, case)`` with ``ref(pol, case)`` within ``tol``."""
    def body(case):
        pol, shown = case["spec"].policy(), args(case)          # the report shows the user's argument names
        got = as_output("the output", quantity, call_user(quantity, fn, shown, shown), shape(pol, case), shown)
        compare(quantity, "the output", got, ref(pol, case), tol, shown)
    run_property(quantity, _cases(specs, **case_kw), body, max_examples)


def _n(case):
    return case["obs"].shape[0]


def check_log_prob(log_prob, *, specs=None, max_examples=50):
    """``log_prob(spec, theta, obs, act) -> (N,)``: ``log pi_theta(a_i | s_i)``."""
    _policy_check("log_prob", log_prob, specs, max_examples,
                  lambda pol, c: pol.log_prob(c["theta"], c["obs"], c["act"]), lambda pol, c: (_n(c),),
                  lambda c: dict(spec=c["spec"], theta=c["theta"], obs=c["obs"], act=c["act"]))


def check_entropy(entropy, *, specs=None, max_examples=50):
    """``entropy(spec, theta, obs) -> (N,)``: the entropy of ``pi_theta(. | s_i)``."""
    _policy_check("entropy", entropy, specs, max_examples,
                  lambda pol, c: pol.entropy(c["theta"], c["obs"]), lambda pol, c: (_n(c),),
                  lambda c: dict(spec=c["spec"], theta=c["theta"], obs=c["obs"]), with_act=False)


def check_kl(kl, *, direction="old_new", specs=None, max_examples=50):
    """``kl(spec, theta_old, theta_new, obs) -> float``: the mean over states of the KL divergence.

    ``direction="old_new"`` is ``KL(pi_old || pi_new)`` (what purepg's trust region bounds);
    ``"new_old"`` is ``KL(pi_new || pi_old)`` (what sb3-contrib's line search bounds).
    """
    if direction not in ("old_new", "new_old"):
        raise ValueError(f"direction: expected 'old_new' or 'new_old', got {direction!r}. Fix: pass one of them")

    def ref(pol, c):
        a, b = (c["theta"], c["theta_new"]) if direction == "old_new" else (c["theta_new"], c["theta"])
        return np.asarray(pol.kl(a, b, c["obs"]))
    _policy_check(f"kl ({direction})", kl, specs, max_examples, ref, lambda pol, c: (),
                  lambda c: dict(spec=c["spec"], theta_old=c["theta"], theta_new=c["theta_new"], obs=c["obs"]),
                  with_act=False, second_theta=True)


def check_score(score, *, specs=None, max_examples=50):
    """``score(spec, theta, obs, act) -> (N, P)``: row ``i`` is ``grad_theta log pi_theta(a_i | s_i)``."""
    _policy_check("score", score, specs, max_examples,
                  lambda pol, c: pol.score(c["theta"], c["obs"], c["act"]), lambda pol, c: (_n(c), pol.num_params),
                  lambda c: dict(spec=c["spec"], theta=c["theta"], obs=c["obs"], act=c["act"]))


def check_fvp(fvp, *, specs=None, max_examples=50):
    """``fvp(spec, theta, obs, v) -> (P,)``: ``F v`` with ``F`` the Fisher (the Hessian of the mean
    ``KL(pi_theta || pi_theta')`` at ``theta' = theta``), no damping."""
    _policy_check("fvp", fvp, specs, max_examples,
                  lambda pol, c: pol.fisher(c["theta"], c["obs"]) @ c["v"], lambda pol, c: (pol.num_params,),
                  lambda c: dict(spec=c["spec"], theta=c["theta"], obs=c["obs"], v=c["v"]),
                  tol=FVP_TOL, with_act=False, vector=True)
