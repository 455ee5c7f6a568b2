"""Tests of purepg.model.value: the value loss and its gradient, explained variance, the ValueFunction fit.

Finite-difference tolerance (see tests/helpers/finite_diff.py): h = 1e-6, rounding ~ 2e-10 |f|, truncation
~ h^2 |f'''| / 6 (zero for the quadratic per-sample loss, small for the tanh network on inputs in
[-2, 2]); ``atol = 1e-6 * (1 + max(|f|, |g|))`` leaves >= 100x margin, while a wrong gradient is off
by O(1) relative.

The clipped loss (2) has kinks where ``|v - v_old| = eps_v`` and where the two squares swap
(``v + v^c = 2 R`` outside the clip interval). Central differences straddle a kink closer than ~h, so
FD tests keep every sample >= 1e-4 from both and place some samples 1e-4..1e-2 from the clip edge.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purepg import optim
from purepg.model.nn import MLP
from purepg.model.value import FitInfo, ValueFunction, explained_variance, value_loss, value_loss_terms
from helpers import finite_diff as fd
from helpers.finite_diff import assert_fd_close_scaled
from helpers.strategies import st_vec

GAP = 1e-4






@st.composite
def st_clipped_batch(draw):
    """(v, R, v_old, eps_v) with half the samples 1e-4..1e-2 from the clip edge |v - v_old| = eps_v."""
    n = draw(st.integers(1, 10))
    eps_v = draw(st.floats(0.05, 1.0))
    R, v_old = draw(st_vec(n, -5.0, 5.0)), draw(st_vec(n, -5.0, 5.0))
    v_free = draw(st_vec(n, -5.0, 5.0))
    sign = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    gap = draw(st_vec(n, GAP, 1e-2)) * draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    near = draw(hnp.arrays(bool, n))
    v = np.where(near, v_old + sign * (eps_v + gap), v_free)     # (n,)
    return v, R, v_old, eps_v


def kink_distance(v, R, v_old, eps_v):
    edge = np.abs(np.abs(v - v_old) - eps_v)
    vc = v_old + np.clip(v - v_old, -eps_v, eps_v)
    swap = np.where(np.abs(v - v_old) > eps_v, np.abs(np.abs(v - R) - np.abs(vc - R)), np.inf)
    return float(min(edge.min(), swap.min()))


# ----- value_loss_terms ---------------------------------------------------------------------------
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st_vec(n, -10, 10), st_vec(n, -10, 10))))
def test_unclipped_loss_gradient_matches_fd(b):
    v, R = b
    L, g = value_loss_terms(v, R)
    assert_fd_close_scaled(g, fd.gradient(lambda x: value_loss_terms(x, R)[0], v), L)
    assert L == pytest.approx(0.5 * np.mean((v - R) ** 2), rel=1e-14, abs=1e-300)


@given(st_clipped_batch())
def test_clipped_loss_gradient_matches_fd_near_the_clip_edge(b):
    v, R, v_old, eps_v = b
    assume(kink_distance(v, R, v_old, eps_v) > GAP)
    L, g = value_loss_terms(v, R, v_old=v_old, clip_eps=eps_v)
    assert_fd_close_scaled(g, fd.gradient(lambda x: value_loss_terms(x, R, v_old=v_old, clip_eps=eps_v)[0], v), L)


@given(st_clipped_batch())
def test_clipped_loss_identities(b):
    v, R, v_old, eps_v = b
    L, g = value_loss_terms(v, R)
    L_c, _ = value_loss_terms(v, R, v_old=v_old, clip_eps=eps_v)
    assert L_c >= L                                               # max of the two squares
    L_same, g_same = value_loss_terms(v, R, v_old=v, clip_eps=eps_v)   # v_old = v: nothing is clipped
    assert L_same == L
    np.testing.assert_allclose(g_same, g, rtol=1e-14, atol=1e-15)
    L_wide, g_wide = value_loss_terms(v, R, v_old=v_old, clip_eps=100.0)   # |v - v_old| <= 10 < 100
    assert L_wide == pytest.approx(L, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(g_wide, g, rtol=1e-12, atol=1e-13)


def test_clipped_loss_worked_example():
    # eps_v = 0.5, R = 0; v_old = 0 for all. v = 1 -> v^c = 0.5: max(1, 0.25) = 1, unclipped active.
    # v_old = 2, v = 1 -> v^c = 1.5: max(1, 2.25) = 2.25, clipped active and outside -> derivative 0.
    # v_old = 1.2, v = 1 -> inside, v^c = v: derivative v - R = 1.
    L, g = value_loss_terms([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], v_old=[0.0, 2.0, 1.2], clip_eps=0.5)
    assert L == pytest.approx(0.5 * (1.0 + 2.25 + 1.0) / 3, rel=1e-14)
    np.testing.assert_allclose(g, np.array([1.0, 0.0, 1.0]) / 3, rtol=1e-14)


def torch_value_loss(v, R, v_old, eps_v):
    """The clipped value loss as CleanRL writes it (0.5 * mean of the max), autograd w.r.t. v."""
    torch = pytest.importorskip("torch")
    vt = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    Rt, ot = torch.tensor(R, dtype=torch.float64), torch.tensor(v_old, dtype=torch.float64)
    vc = ot + torch.clamp(vt - ot, -eps_v, eps_v)
    L = 0.5 * torch.max((vt - Rt) ** 2, (vc - Rt) ** 2).mean()
    L.backward()
    return L.item(), vt.grad.numpy()


@given(st_clipped_batch())
def test_clipped_loss_matches_pytorch_autograd(b):
    v, R, v_old, eps_v = b
    # add samples on the clip edges, with v = v_old (every tie), and at a swap of the squares
    v = np.concatenate([v, v_old + eps_v, v_old - eps_v, v_old, R + 0.5 * eps_v])
    R = np.concatenate([R, R, R, R, R])
    v_old = np.concatenate([v_old, v_old, v_old, v_old, R[:len(v_old)] + 2.0 * eps_v])
    L, g = value_loss_terms(v, R, v_old=v_old, clip_eps=eps_v)
    L_t, g_t = torch_value_loss(v, R, v_old, eps_v)
    assert L == pytest.approx(L_t, rel=1e-13, abs=1e-13)          # float64; summation order only
    np.testing.assert_allclose(g, g_t, rtol=1e-13, atol=1e-300)


def test_clipped_loss_tie_of_the_squares_splits_like_pytorch():
    # v_old = 0, eps_v = 1, v = -2 -> v^c = -1; R = -1.5: both squares are 0.25 (exactly), the clip is
    # inactive at v, so the derivative is half the unclipped one: 0.5 * (v - R) / N = -0.25 / 2.
    v, R, v_old = np.array([-2.0, 1.0]), np.array([-1.5, 0.0]), np.zeros(2)
    L, g = value_loss_terms(v, R, v_old=v_old, clip_eps=1.0)
    assert g[0] == -0.125
    L_t, g_t = torch_value_loss(v, R, v_old, 1.0)
    assert L == L_t
    np.testing.assert_array_equal(g, g_t)


def test_value_loss_terms_errors():
    with pytest.raises(ValueError, match=r"target: expected shape \(3,\), one entry per sample like v, got \(3, 1\)"):
        value_loss_terms(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"v_old, clip_eps: expected both or neither.*Fix: pass both"):
        value_loss_terms(np.zeros(3), np.zeros(3), v_old=np.zeros(3))
    with pytest.raises(ValueError, match=r"v_old, clip_eps: expected both or neither"):
        value_loss_terms(np.zeros(3), np.zeros(3), clip_eps=0.2)
    with pytest.raises(ValueError, match=r"clip_eps: expected a finite number > 0, got 0.0\. Fix"):
        value_loss_terms(np.zeros(3), np.zeros(3), v_old=np.zeros(3), clip_eps=0.0)
    with pytest.raises(ValueError, match=r"target: expected finite values, got inf at index 0"):
        value_loss_terms(np.zeros(1), [np.inf])


# ----- through the network ------------------------------------------------------------------------
@st.composite
def st_net_batch(draw):
    obs_dim = draw(st.integers(1, 3))
    hidden = draw(st.sampled_from([(), (4,), (3, 3)]))
    vf = ValueFunction(obs_dim, hidden)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 8))
    theta_v = vf.init(rng) + 0.2 * rng.standard_normal(vf.num_params)   # (P_v,)
    obs = rng.uniform(-2.0, 2.0, (n, obs_dim))                          # (n, obs_dim)
    R = rng.uniform(-3.0, 3.0, n)                                       # (n,)
    v_old = vf.predict(theta_v, obs) + rng.uniform(-1.0, 1.0, n)        # (n,)
    return vf, theta_v, obs, R, v_old


@given(st_net_batch(), st.booleans())
def test_value_loss_gradient_through_mlp(b, clipped):
    vf, theta_v, obs, R, v_old = b
    kw = dict(v_old=v_old, clip_eps=0.3) if clipped else {}
    if clipped:
        assume(kink_distance(vf.predict(theta_v, obs), R, v_old, 0.3) > GAP)
    L, g = vf.loss(theta_v, obs, R, **kw)
    assert_fd_close_scaled(g, fd.gradient(lambda th: vf.loss(th, obs, R, **kw).value, theta_v), L)
    assert value_loss(vf.net, theta_v, obs, R, **kw).value == L


@given(st_net_batch(), st.booleans())
def test_unchecked_value_loss_returns_the_same_bits(b, clipped):
    """check=False (a training loop that validated its batch) skips validation, nothing else."""
    vf, theta_v, obs, R, v_old = b
    kw = dict(v_old=v_old, clip_eps=0.3) if clipped else {}
    c, u = vf.loss(theta_v, obs, R, **kw), vf.loss(theta_v, obs, R, **kw, check=False)
    assert u.value == c.value
    np.testing.assert_array_equal(u.grad, c.grad)


def test_value_function_init_and_predict():
    vf = ValueFunction(3, (8, 5))
    assert vf.net == MLP((3, 8, 5, 1)) and vf.num_params == 8 * 3 + 8 + 5 * 8 + 5 + 5 + 1
    theta_v = vf.init(np.random.default_rng(0))
    (W1, b1), (W2, b2), (W3, b3) = vf.net.unflatten(theta_v)
    np.testing.assert_allclose(W1.T @ W1, 2.0 * np.eye(3), atol=1e-12)     # gain sqrt(2), orthonormal columns
    np.testing.assert_allclose(W2 @ W2.T, 2.0 * np.eye(5), atol=1e-12)     # gain sqrt(2), orthonormal rows
    assert np.linalg.norm(W3) == pytest.approx(1.0, rel=1e-12)             # gain 1 on the head
    assert not (b1.any() or b2.any() or b3.any())
    obs = np.random.default_rng(1).standard_normal((7, 3))
    v = vf.predict(theta_v, obs)
    assert v.shape == (7,)
    np.testing.assert_array_equal(v, vf.net.forward(theta_v, obs)[0][:, 0])
    np.testing.assert_array_equal(theta_v, vf.init(np.random.default_rng(0)))
    assert ValueFunction(2, ()).net == MLP((2, 1))


def test_value_function_errors():
    with pytest.raises(ValueError, match=r"obs_dim: expected an integer >= 1, got 0\. Fix"):
        ValueFunction(0)
    with pytest.raises(ValueError, match=r"hidden: expected an integer >= 1, got -3\. Fix"):
        ValueFunction(2, (4, -3))
    with pytest.raises(TypeError, match=r"hidden: expected a tuple of layer widths, got 64\. Fix"):
        ValueFunction(2, 64)
    with pytest.raises(ValueError, match=r"net: expected one output.*got sizes \(2, 3\)\. Fix"):
        value_loss(MLP((2, 3)), np.zeros(9), np.zeros((1, 2)), np.zeros(1))


# ----- explained variance -------------------------------------------------------------------------
@given(st.integers(2, 20).flatmap(lambda n: st.tuples(st_vec(n, -10, 10), st_vec(n, -10, 10))),
       st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_explained_variance_identities(b, a, c):
    pred, R = b
    assume(np.var(R) > 1e-6)
    ev = explained_variance(pred, R)
    assert ev <= 1.0
    assert ev == pytest.approx(1.0 - np.mean((R - pred - np.mean(R - pred)) ** 2) / np.var(R), rel=1e-9, abs=1e-9)
    assert explained_variance(R, R) == 1.0
    assert explained_variance(np.full_like(R, R.mean()), R) == pytest.approx(0.0, abs=1e-12)
    assert explained_variance(a * pred + c, a * R + c) == pytest.approx(ev, rel=1e-7, abs=1e-7)  # affine invariant


def test_explained_variance_constant_target_is_nan_and_errors():
    assert np.isnan(explained_variance([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert np.isnan(explained_variance([1.0], [2.0]))
    with pytest.raises(ValueError, match=r"target: expected shape \(3,\), one entry per sample like pred, got \(2,\)"):
        explained_variance(np.zeros(3), np.zeros(2))


# ----- fit ----------------------------------------------------------------------------------------
def regression_problem(seed, n=256):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1.0, 1.0, (n, 2))                         # (n, 2)
    return obs, np.sin(2.0 * obs[:, 0]) + obs[:, 1] ** 2 + 3.0   # (n,)


def test_fit_reduces_loss_on_a_regression_problem():
    obs, R = regression_problem(0)
    vf = ValueFunction(2, (16, 16))
    theta_v = vf.init(np.random.default_rng(1))
    th, state, info = vf.fit(theta_v, optim.adam_init(vf.num_params), obs, R, lr=1e-2, epochs=200,
                             minibatch_size=50, rng=np.random.default_rng(2))
    assert isinstance(info, FitInfo) and info.n_updates == 200 * 6 == state.t   # 256 = 5 * 50 + 6: 6 minibatches
    assert info.loss_before == vf.loss(theta_v, obs, R).value and info.loss_after == vf.loss(th, obs, R).value
    assert info.loss_after < 0.01 * info.loss_before
    assert info.explained_variance_after > 0.95 > 0.5 > info.explained_variance_before
    # deterministic given the seed, and the returned state continues where it stopped
    th2, _, _ = vf.fit(theta_v, optim.adam_init(vf.num_params), obs, R, lr=1e-2, epochs=200,
                       minibatch_size=50, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(th, th2)
    th3, _, info3 = vf.fit(th, state, obs, R, lr=1e-3, epochs=5, minibatch_size=256, rng=np.random.default_rng(3))
    assert info3.n_updates == 5 and info3.loss_before == info.loss_after


def test_fit_passes_adam_hyperparameters():
    # one full-batch epoch = one adam_step on the full-batch gradient, with the same beta1, beta2, eps
    obs, R = regression_problem(7, n=32)
    vf = ValueFunction(2, (4,))
    theta_v, st0 = vf.init(np.random.default_rng(8)), optim.adam_init(vf.num_params)
    kw = dict(beta1=0.5, beta2=0.9, eps=1e-3)
    th, _, info = vf.fit(theta_v, st0, obs, R, lr=0.1, epochs=1, minibatch_size=32, rng=np.random.default_rng(0), **kw)
    th_ref, _ = optim.adam_step(theta_v, vf.loss(theta_v, obs, R).grad, st0, lr=0.1, **kw)
    np.testing.assert_allclose(th, th_ref, rtol=1e-12, atol=1e-14)   # differs only by the minibatch order
    assert info.n_updates == 1
    th_default, _ = optim.adam_step(theta_v, vf.loss(theta_v, obs, R).grad, st0, lr=0.1)
    assert not np.allclose(th, th_default)


def test_fit_with_clipped_loss_and_grad_norm():
    obs, R = regression_problem(4, n=64)
    vf = ValueFunction(2, (8,))
    theta_v = vf.init(np.random.default_rng(5))
    v_old = vf.predict(theta_v, obs)
    th, _, info = vf.fit(theta_v, optim.adam_init(vf.num_params), obs, R, lr=1e-2, epochs=10, minibatch_size=16,
                         rng=np.random.default_rng(6), v_old=v_old, clip_eps=0.5, max_grad_norm=0.5)
    assert info.loss_before == vf.loss(theta_v, obs, R, v_old=v_old, clip_eps=0.5).value
    assert info.loss_after < info.loss_before


def test_fit_errors():
    vf = ValueFunction(2, (4,))
    th, st0 = vf.init(np.random.default_rng(0)), optim.adam_init(vf.num_params)
    obs, R, rng = np.zeros((5, 2)), np.zeros(5), np.random.default_rng(0)
    kw = dict(lr=1e-3, epochs=1, minibatch_size=2, rng=rng)
    with pytest.raises(ValueError, match=r"lr: expected a finite number > 0, got 0.0\. Fix"):
        vf.fit(th, st0, obs, R, **{**kw, "lr": 0.0})
    with pytest.raises(ValueError, match=r"epochs: expected an integer >= 1, got 0\. Fix"):
        vf.fit(th, st0, obs, R, **{**kw, "epochs": 0})
    with pytest.raises(ValueError, match=r"minibatch_size: expected an integer >= 1, got 2.5\. Fix"):
        vf.fit(th, st0, obs, R, **{**kw, "minibatch_size": 2.5})
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator, got int\. Fix"):
        vf.fit(th, st0, obs, R, **{**kw, "rng": 0})
    with pytest.raises(ValueError, match=r"targets: expected shape \(5,\), one entry per sample like obs, got \(4,\)"):
        vf.fit(th, st0, obs, np.zeros(4), **kw)
    with pytest.raises(ValueError, match=r"v_old, clip_eps: expected both or neither"):
        vf.fit(th, st0, obs, R, **kw, clip_eps=0.2)


@pytest.mark.parametrize("clip", [{}, {"v_old": np.linspace(-1, 1, 6), "clip_eps": 0.2, "clip_style": "prediction"}])
def test_value_loss_into_a_workspace_equals_fresh_arrays_and_needs_check_false(clip):
    # the loop's path (ws, check=False) gives the same bits as the fresh passes; a workspace with check=True is refused
    rng = np.random.default_rng(4)
    vf = ValueFunction(3, (5, 4))
    theta_v, obs, R = vf.init(rng), rng.standard_normal((6, 3)), rng.standard_normal(6)
    ws = vf.net.workspace(6)
    a, b = vf.loss(theta_v, obs, R, **clip, check=False), vf.loss(theta_v, obs, R, **clip, check=False, ws=ws)
    assert a.value == b.value and np.array_equal(a.grad, b.grad)
    with pytest.raises(ValueError, match="^ws: expected check=False"):
        vf.loss(theta_v, obs, R, ws=ws)
