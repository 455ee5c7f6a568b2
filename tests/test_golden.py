"""Golden vectors: reproducible bytes, recomputable through the public API, and internally consistent.

The identity tests do not trust purepg's code paths that produced the file: each entry is checked
against a second route (finite differences, an explicit sum over actions, a plain-loop GAE, a Krylov
projection for CG, the closed-form PPO objectives), on the published file and on Hypothesis-drawn
seeds.
"""
import re
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli_process
from helpers.finite_diff import directional, gradient
from helpers.gae_loop import plain_gae
from purepg.verify import golden

POLICIES = ("cat", "gauss")
EXACT = dict(rtol=1e-12, atol=1e-12)   # same quantity by another float64 route: differences ~1e-15
FD = dict(rtol=1e-6, atol=1e-6)        # central differences, h = 1e-6: see tests/helpers/finite_diff.py


@pytest.fixture(scope="module")
def G():
    return golden.golden_vectors()


def _inputs(G, p):
    pol = golden.policy_from(G, p)
    return pol, G[f"{p}/theta"], G[f"{p}/theta_new"], G[f"{p}/obs"], G[f"{p}/act"]


# ----- the file ------------------------------------------------------------------------------------
def test_two_invocations_write_identical_bytes(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    golden.write_golden(a)
    golden.write_golden(b)
    assert a.read_bytes() == b.read_bytes()
    back = golden.read_golden(a)
    ref = golden.golden_vectors()
    assert list(back) == list(ref)
    for k in ref:
        assert back[k].dtype == ref[k].dtype and back[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(back[k], ref[k], err_msg=k)
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zipfile.ZipFile(a).infolist())


def test_file_is_self_describing(G):
    assert str(G["format"]) == golden.FORMAT and int(G["seed"]) == golden.SEED
    assert "parameters_to_vector" in str(G["layout"]) and "maximised" in str(G["conventions"])
    for p, kind, sizes in (("cat", "categorical", (4, 8, 8, 3)), ("gauss", "diag_gaussian", (3, 8, 2))):
        assert str(G[f"{p}/distribution"]) == kind and tuple(G[f"{p}/sizes"]) == sizes
        pol = golden.policy_from(G, p)
        assert pol.num_params == int(G[f"{p}/num_params"]) == G[f"{p}/theta"].size
    assert G["cat/act"].dtype == np.int64 and G["gauss/act"].shape == (golden.T * golden.E, 2)


@pytest.mark.parametrize("p", POLICIES)
def test_each_entry_recomputed_through_the_public_api(G, p):
    from purepg.optim import conjugate_gradient, natural_step
    from purepg.pg.surrogates import ppo_clip, ppo_kl_penalty

    pol, th, th1, obs, act = _inputs(G, p)
    lp, A, v = G[f"{p}/logp_old"], G[f"{p}/adv"], G[f"{p}/v"]
    c, k = float(G["damping"]), int(G["cg_iters"])
    fvp = lambda u: pol.fvp(th, obs, u)  # noqa: E731
    clip = ppo_clip(pol, th1, obs, act, lp, A, eps=float(G["clip_eps"]))
    pen = ppo_kl_penalty(pol, th1, obs, act, lp, A, theta_old=th, beta=float(G["beta"]))
    want = {"logp_old": pol.log_prob(th, obs, act), "logp_new": pol.log_prob(th1, obs, act),
            "score": pol.score(th, obs, act), "entropy": pol.entropy(th, obs),
            "entropy_grad": pol.entropy_grad(th, obs), "kl": pol.kl(th, th1, obs),
            "kl_grad": pol.kl_grad(th, th1, obs), "fisher": pol.fisher(th, obs), "fvp": pol.fvp(th, obs, v),
            "cg_x": conjugate_gradient(fvp, G[f"{p}/pg"], iters=k, tol=0.0, damping=c).x,
            "natural_step": natural_step(G[f"{p}/pg"], fvp, float(G["natural_eps"]), damping=c, solver="cg",
                                         cg_iters=k, cg_tol=0.0).step,
            "ppo_clip": clip.value, "ppo_clip_grad": clip.grad, "ppo_clip_fraction": clip.clip_fraction,
            "ppo_kl_penalty": pen.value, "ppo_kl_penalty_grad": pen.grad, "adv": G["gae/adv"].reshape(-1)}
    for name, value in want.items():
        np.testing.assert_array_equal(G[f"{p}/{name}"], value, err_msg=name)


def test_gae_entries_recomputed(G):
    from purepg.pg.returns import gae

    adv, ret = gae(G["batch/rew"], G["batch/v"], G["batch/v_next"], G["batch/terminated"], G["batch/truncated"],
                   float(G["batch/gamma"]), float(G["batch/lam"]))
    np.testing.assert_array_equal(G["gae/adv"], adv)
    np.testing.assert_array_equal(G["gae/ret"], ret)


# ----- identities ----------------------------------------------------------------------------------
def _mlp_numpy(theta, sizes, x):
    """The network in PyTorch layout, written out: W (d_out, d_in) row-major then b, tanh between."""
    i, h = 0, x
    for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta[i:i + d_out * d_in].reshape(d_out, d_in)
        b = theta[i + d_out * d_in:i + d_out * d_in + d_out]
        i += d_out * d_in + d_out
        h = h @ W.T + b                                                   # (N, d_out)
        h = np.tanh(h) if l < len(sizes) - 2 else h
    return h, theta[i:]


def check_log_probs_and_entropy(G, p):
    """Log-probs and entropies from an independent NumPy forward pass in the documented layout."""
    out, log_std = _mlp_numpy(G[f"{p}/theta"], tuple(G[f"{p}/sizes"]), G[f"{p}/obs"])
    act = G[f"{p}/act"]
    if p == "cat":
        logp = out - out.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))         # (N, 3)
        lp, H = logp[np.arange(act.size), act], -(np.exp(logp) * logp).sum(1)
    else:
        sig = np.exp(log_std)
        lp = (-0.5 * ((act - out) / sig) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(1)
        H = np.full(act.shape[0], (log_std + 0.5 * np.log(2 * np.pi * np.e)).sum())
    np.testing.assert_allclose(G[f"{p}/logp_old"], lp, **EXACT)
    np.testing.assert_allclose(G[f"{p}/entropy"], H, **EXACT)


def check_gradients_by_finite_differences(G, p):
    pol, th, th1, obs, act = _inputs(G, p)
    np.testing.assert_allclose(G[f"{p}/score"], gradient(lambda t: pol.log_prob(t, obs, act), th), **FD)
    np.testing.assert_allclose(G[f"{p}/entropy_grad"], gradient(lambda t: pol.entropy(t, obs).mean(), th), **FD)
    np.testing.assert_allclose(G[f"{p}/kl_grad"], gradient(lambda t: pol.kl(th, t, obs), th1), **FD)
    # F v = d/dh grad_theta' D(theta, theta + h v) at h = 0 (F is the Hessian of D at theta' = theta)
    Fv = directional(lambda t: pol.kl_grad(th, t, obs), th, G[f"{p}/v"])
    np.testing.assert_allclose(G[f"{p}/fvp"], Fv, **FD)


def check_fisher(G, p):
    pol, th, _, obs, _ = _inputs(G, p)
    F, P = G[f"{p}/fisher"], G[f"{p}/theta"].size
    np.testing.assert_allclose(G[f"{p}/fvp"], F @ G[f"{p}/v"], **EXACT)
    np.testing.assert_array_equal(F, F.T)
    assert np.linalg.eigvalsh(F).min() > -1e-12        # PSD up to rounding of a sum of outer products
    if p == "cat":   # F = mean_i sum_a p(a|s_i) S_a[i] S_a[i]^T, the expectation over actions written out
        N = obs.shape[0]
        want = np.zeros((P, P))
        for a in range(3):
            acts = np.full(N, a)
            S, w = pol.score(th, obs, acts), np.exp(pol.log_prob(th, obs, acts)) / N   # (N, P), (N,)
            want += S.T @ (w[:, None] * S)
        np.testing.assert_allclose(F, want, **EXACT)
    else:            # the state-independent log_std block is 2 I, with no cross terms (G4)
        np.testing.assert_allclose(F[-2:, -2:], 2 * np.eye(2), **EXACT)
        np.testing.assert_array_equal(F[-2:, :-2], 0.0)


def _krylov_solution(A, b, k):
    """Galerkin solution of A x = b on span{b, ..., A^(k-1) b}: exact CG after k steps."""
    Q = np.zeros((b.size, k))
    q = b / np.linalg.norm(b)
    for j in range(k):
        Q[:, j] = q
        w = A @ q
        for _ in range(2):                                # Gram-Schmidt twice: orthogonal to rounding
            w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        q = w / np.linalg.norm(w)
    return Q @ np.linalg.solve(Q.T @ A @ Q, Q.T @ b)


def check_cg_and_natural_step(G, p):
    A, g, S = G[f"{p}/adv"], G[f"{p}/pg"], G[f"{p}/score"]
    np.testing.assert_allclose(g, S.T @ A / A.size, **EXACT)   # the surrogate gradient at r = 1
    Fc = G[f"{p}/fisher"] + float(G["damping"]) * np.eye(g.size)
    # CG in float64 drifts from the exact-arithmetic iterate once its directions lose orthogonality, which
    # happens as soon as a Ritz value converges to a well-separated eigenvalue (Greenbaum 1997, ch. 4).
    # The drift is set by rounding (the BLAS kernel's summation order) and is not a fixed multiple of the
    # unit roundoff: over 400 seeds x 2 policies it reached 1.7e-4 relative (cond(F + cI) ~ 850; the
    # Krylov projection below agreed with a 60-digit CG to 1e-14, so the drift is CG's own). What the
    # entry must show is that it is the k-th iterate, not the (k - 1)-th or (k + 1)-th: the drift was at
    # most 2.4e-3 of the distance to the nearest neighbouring iterate, so a tenth of that distance leaves a
    # 40x margin, while a step more or less (ratio ~1) or a wrong update (ratio >> 1) still fails.
    k = int(G["cg_iters"])
    x_prev, x_K, x_next = (_krylov_solution(Fc, g, j) for j in (k - 1, k, k + 1))
    gap = min(np.linalg.norm(x_K - x_prev), np.linalg.norm(x_next - x_K))
    assert np.linalg.norm(G[f"{p}/cg_x"] - x_K) <= 0.1 * gap
    s, x = G[f"{p}/natural_step"], G[f"{p}/cg_x"]
    assert 0.5 * s @ Fc @ s == pytest.approx(float(G["natural_eps"]), rel=1e-12)
    np.testing.assert_allclose(s, (s @ x) / (x @ x) * x, **EXACT)
    assert s @ x > 0


def check_ppo(G, p):
    pol, th, th1, obs, act = _inputs(G, p)
    lp, A, eps, beta = G[f"{p}/logp_old"], G[f"{p}/adv"], float(G["clip_eps"]), float(G["beta"])
    r = np.exp(G[f"{p}/logp_new"] - lp)                                      # (N,)
    assert float(G[f"{p}/ppo_clip"]) == pytest.approx(np.mean(np.minimum(r * A, np.clip(r, 1 - eps, 1 + eps) * A)),
                                                      rel=1e-12)
    assert float(G[f"{p}/ppo_clip_fraction"]) == np.mean(np.abs(r - 1) > eps)
    assert float(G[f"{p}/ppo_kl_penalty"]) == pytest.approx(np.mean(r * A) - beta * float(G[f"{p}/kl"]), rel=1e-12)
    from purepg.pg.surrogates import ppo_clip, ppo_kl_penalty

    clip = lambda t: ppo_clip(pol, t, obs, act, lp, A, eps=eps).value  # noqa: E731
    pen = lambda t: ppo_kl_penalty(pol, t, obs, act, lp, A, theta_old=th, beta=beta).value  # noqa: E731
    # the clip objective is piecewise smooth; FD is valid while no ratio is within h |dr| of a kink
    if np.min(np.abs(np.abs(r - 1) - eps)) > 1e-4:
        np.testing.assert_allclose(G[f"{p}/ppo_clip_grad"], gradient(clip, th1), **FD)
    np.testing.assert_allclose(G[f"{p}/ppo_kl_penalty_grad"], gradient(pen, th1), **FD)


def check_all(G):
    np.testing.assert_allclose(G["gae/adv"], plain_gae(*(G[f"batch/{k}"] for k in (
        "rew", "v", "v_next", "terminated", "truncated", "gamma", "lam"))), **EXACT)
    np.testing.assert_allclose(G["gae/ret"], G["gae/adv"] + G["batch/v"], **EXACT)
    for p in POLICIES:
        np.testing.assert_array_equal(G[f"{p}/adv"], G["gae/adv"].reshape(-1))   # time-major flattening
        check_log_probs_and_entropy(G, p)
        check_gradients_by_finite_differences(G, p)
        check_fisher(G, p)
        check_cg_and_natural_step(G, p)
        check_ppo(G, p)


def test_published_vectors_satisfy_the_identities(G):
    check_all(G)


def test_published_batch_exercises_every_branch(G):
    # GAE: a mid-batch termination, a truncation (bootstrapped) and a termination at the batch end
    assert G["batch/terminated"].sum() == 2 and G["batch/truncated"].sum() == 1
    assert G["batch/terminated"][-1].any()
    for p in POLICIES:   # PPO: ratios inside the clip range, clipped ones, and active ones outside it
        r, A = np.exp(G[f"{p}/logp_new"] - G[f"{p}/logp_old"]), G[f"{p}/adv"]
        inside = np.abs(r - 1) <= float(G["clip_eps"])
        clipped = ((A > 0) & (r > 1.2)) | ((A < 0) & (r < 0.8))
        assert inside.any() and clipped.any() and (~inside & ~clipped).any(), p


@settings(max_examples=5)
@given(st.integers(0, 2**32 - 1))
def test_identities_hold_for_any_seed(seed):
    check_all(golden.golden_vectors(seed))


# ----- bad input -----------------------------------------------------------------------------------
def test_bad_seed():
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0, got -1\. Fix"):
        golden.golden_vectors(-1)
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0, got 1\.5"):
        golden.golden_vectors(1.5)


def test_bad_policy_section(G):
    with pytest.raises(ValueError, match=r"p: expected one of 'cat', 'gauss', got 'dog'\. Fix"):
        golden.policy_from(G, "dog")


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path: the directory .*nope does not exist .*Fix: create it"):
        golden.write_golden(tmp_path / "nope" / "g.npz")


def test_read_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"path: expected a readable \.npz, got .*junk.npz .*Fix: regenerate"):
        golden.read_golden(junk)
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("something-else"))
    with pytest.raises(ValueError, match=r"path: expected golden vectors of format 'purepg-golden-1', got .* of format 'something-else'\. Fix"):
        golden.read_golden(other)


# ----- the command ---------------------------------------------------------------------------------
def purepg_cli(args, cwd):
    """``python -m purepg ARGS`` in ``cwd``: (exit status, stdout, stderr)."""
    return cli_process.run(args, cwd, timeout=120)


def test_cli_golden_writes_the_same_bytes_twice(tmp_path):
    for name in ("a.npz", "b.npz"):
        rc, out, err = purepg_cli(["golden", "--out", name], tmp_path)
        assert rc == 0, err
        assert out.startswith(f"Wrote {name}: golden vectors (purepg-golden-1, seed {golden.SEED})")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes() == \
        golden.to_bytes(golden.golden_vectors())
    rc, _, _ = purepg_cli(["golden", "--seed", "3", "--out", "c.npz"], tmp_path)
    assert rc == 0 and int(golden.read_golden(tmp_path / "c.npz")["seed"]) == 3
    rc, out, _ = purepg_cli(["golden", "--help"], tmp_path)
    assert rc == 0 and "identical bytes" in out and "--seed" in out


@pytest.mark.parametrize("args, message", [
    (["golden", "--out", "nope/x.npz"], r"path: the directory .*nope does not exist"),
    (["golden", "--seed", "-1"], r"seed: expected an integer >= 0, got -1"),
    (["golden", "--seed", "x"], r"argument --seed: expected an integer, got 'x'"),
    (["golden", "extra"], r"unrecognized arguments: extra"),
])
def test_cli_golden_bad_input(tmp_path, args, message):
    rc, out, err = purepg_cli(args, tmp_path)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
