"""Exact bias and exact variance of every purepg gradient estimator on one small MDP.

Nothing here is sampled: each trajectory of a fixed random MDP (S = 2 states, A = 2 actions, horizon
T = 3, gamma = 0.95) is enumerated with its probability (purepg.verify.tabular), every estimator is evaluated
on every trajectory, and the exact mean and covariance follow (eq. T5 of purepg.verify.tabular). For two
policies (a near-uniform one and a peaked one) the table shows, per estimator,

* ``bias``      = || E[estimate] - grad J ||  (the exact grad J of dynamic programming),
* ``N``         = batch size: 1, or 2 for the baselines estimated from the batch,
* ``total_var`` = trace Cov[estimate] for a batch of N trajectories,
* ``var_cut``   = 1 - total_var / total_var(same estimator, no baseline, same N).

Off-policy rows estimate grad J at the listed policy from data of the *other* policy. Baselines marked
"exact" are constants computed from the enumeration; "batch of 2" baselines are estimated from the
batch itself, whose exact distribution (all ordered pairs of trajectories) is enumerated too.

    python bench/estimator_variance.py [--out bench/out/estimator_variance.csv]
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as bench_machine  # noqa: E402  (bench/machine.py)
import purepg  # noqa: E402
from purepg.pg import estimators as es
from purepg.verify import tabular as tb
from purepg.pg.baselines import optimal_baseline, optimal_baseline_rtg
from purepg.pg.returns import reward_to_go

SEED, S, A, T, GAMMA = 2024, 2, 2, 3, 0.95


def _policies(pol, rng):
    near_uniform = 0.1 * rng.standard_normal(pol.num_params)
    peaked = 2.0 * rng.standard_normal(pol.num_params)
    return {"near-uniform": near_uniform, "peaked": peaked}


def _exact_baselines(mdp, pol, theta, enum, batch):
    """Exact constants: J, per-parameter optimal b (total and reward-to-go), V_t(s_t) per step."""
    obs, act, rew = batch
    K = len(enum.prob)
    scores = pol.score(theta, obs.reshape(K * T, S), act.ravel()).reshape(K, T, -1)    # (K, T, P)
    Q = np.array([reward_to_go(r, mdp.gamma) for r in rew])                            # (K, T)
    h = mdp.gamma ** np.arange(T)                                                       # (T,)
    pi = tb.policy_table(pol, theta, mdp)
    V = (pi * tb.action_values(mdp, pi)).sum(axis=2)                                    # (T, S)
    return dict(J=tb.exact_return(mdp, pol, theta),
                b_tot=optimal_baseline(scores.sum(axis=1), Q[:, 0], weights=enum.prob),
                b_rtg=optimal_baseline_rtg(scores * h[:, None], Q, weights=enum.prob),
                values=V[np.arange(T), enum.states])


def _on_policy_rows(mdp, pol, theta, enum, batch):
    """(estimator, baseline, N, Moments) for the on-policy estimators at theta."""
    b = _exact_baselines(mdp, pol, theta, enum, batch)
    specs = [(es.reinforce, "none", {}), (es.reinforce, "mean return J (exact)", dict(baseline=b["J"])),
             (es.reinforce, "optimal b_k (exact)", dict(baseline=b["b_tot"])),
             (es.reinforce_rtg, "none", {}), (es.reinforce_rtg, "mean return J (exact)", dict(baseline=b["J"])),
             (es.reinforce_rtg, "optimal b_k (exact)", dict(baseline=b["b_rtg"])),
             (es.reinforce_rtg, "V_t(s_t) (exact)", dict(values=b["values"]))]
    out = []
    for f, name, kw in specs:
        rows = f(pol, theta, *batch, gamma=mdp.gamma, per_trajectory=True, **kw)
        out.append((f.__name__, name, 1, tb.moments(rows, enum.prob)))
    for f in (es.reinforce, es.reinforce_rtg):
        for kind in ("mean", "optimal"):
            def est(o, a, r, f=f, kind=kind):
                return f(pol, theta, o, a, r, gamma=mdp.gamma, baseline=kind)
            out.append((f.__name__, f"{kind} (from the batch)", 2, tb.exact_moments(est, enum, batch_size=2)))
    return out


def _off_policy_rows(mdp, pol, theta_b, theta_t):
    """Off-policy estimators of grad J(theta_t) from trajectories of theta_b."""
    enum = tb.enumerate_trajectories(mdp, tb.policy_table(pol, theta_b, mdp))
    obs, act, rew = tb.as_batch(enum)
    logp = pol.log_prob(theta_b, obs.reshape(-1, S), act.ravel()).reshape(act.shape)
    return [(f.__name__, "none", 1, tb.moments(f(pol, theta_t, obs, act, rew, logp, gamma=mdp.gamma,
                                               per_trajectory=True), enum.prob))
            for f in (es.offpolicy_whole, es.offpolicy_per_decision, es.offpolicy_first_order,
                      es.offpolicy_notes_literal)]


def table(mdp, pol, thetas):
    """One dict per (policy, estimator, baseline): exact bias, total variance, variance cut."""
    records = []
    for label, theta in thetas.items():
        other = next(th for name, th in thetas.items() if name != label)
        enum = tb.enumerate_trajectories(mdp, tb.policy_table(pol, theta, mdp))
        g = tb.exact_gradient(mdp, pol, theta)
        rows = _on_policy_rows(mdp, pol, theta, enum, tb.as_batch(enum)) + _off_policy_rows(mdp, pol, other, theta)
        none = {est: m.total_variance for est, base, _, m in rows if base == "none"}   # N = 1
        for est, base, N, m in rows:
            records.append(dict(policy=label, estimator=est, baseline=base, N=N, grad_norm=float(np.linalg.norm(g)),
                                bias=float(np.linalg.norm(m.mean - g)), total_var=m.total_variance,
                                var_cut=1.0 - m.total_variance / (none[est] / N)))
    return records


def _print(records):
    head = f"{'policy':<13}{'estimator':<24}{'baseline':<24}{'N':>2}{'bias':>10}{'total_var':>11}{'var_cut':>9}"
    print(head)
    print("-" * len(head))
    for r in records:
        cut = "-" if r["baseline"] == "none" else f"{r['var_cut']:.1%}"
        print(f"{r['policy']:<13}{r['estimator']:<24}{r['baseline']:<24}{r['N']:>2}{r['bias']:>10.1e}"
              f"{r['total_var']:>11.4g}{cut:>9}")


def main(argv=None):
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=here / "out" / "estimator_variance.csv",
                        help="CSV file to write (default: bench/out/estimator_variance.csv)")
    args = parser.parse_args(argv)
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"machine: {bench_machine.summary()}, numba {numba.__version__}, purepg {purepg.__version__}")
    rng = np.random.default_rng(SEED)
    mdp = tb.random_mdp(rng, S, A, T, gamma=GAMMA)
    pol = purepg.CategoricalPolicy(S, A, hidden=())
    print(f"MDP: random_mdp(default_rng({SEED}), S={S}, A={A}, T={T}, gamma={GAMMA}); "
          f"policy: CategoricalPolicy({S}, {A}, hidden=()), P={pol.num_params}; "
          f"{tb.trajectory_count(mdp)} trajectories")
    records = table(mdp, pol, _policies(pol, rng))
    for label in dict.fromkeys(r["policy"] for r in records):
        print(f"||grad J|| at the {label} policy: {next(r['grad_norm'] for r in records if r['policy'] == label):.4f}")
    print()
    _print(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
