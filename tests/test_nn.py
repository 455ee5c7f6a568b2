"""purepg.model.nn: the MLP's forward pass, hand-derived VJP and JVP, per-sample gradients, init, bad input.

Finite-difference tolerances (h = 1e-6, central differences, see tests/helpers/finite_diff.py)
-------------------------------------------------------------------------------------
Truncation is h^2/6 |f'''| ~ 2e-13 |f'''| and rounding eps |f| / h ~ 2.2e-10 |f|. With the strategy bounds
(|theta| <= 2, |x| <= 3, widths <= 6, two hidden layers) a relu network's output is at most ~4e3 and
its third derivatives in theta are products of at most three weights and an input, so both terms are
below ~1e-6 absolute. We compare with ``rtol=1e-6`` and ``atol=1e-8 * (1 + max|f|)`` per test: a wrong
gradient (a sign, a missing term, a transposed block) is off by O(1) relative and fails.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import purepg
from helpers import strategies as S
from helpers.finite_diff import assert_fd_close, directional, gradient
from purepg.model.nn import MLP, orthogonal
from purepg.model.value import ValueFunction

KINK_MARGIN = 1e-3   # see _smooth_rows


def _pre_activations(net, theta, x):
    """Hidden pre-activations z_l (l < L) recomputed from the layout by hand: list of (N, d_l)."""
    zs, h, off = [], x, 0
    for d_in, d_out in zip(net.sizes[:-2], net.sizes[1:-1]):
        W = theta[off:off + d_out * d_in].reshape(d_out, d_in)
        b = theta[off + d_out * d_in:off + d_out * d_in + d_out]
        off += d_out * d_in + d_out
        zs.append(h @ W.T + b)
        h = np.tanh(zs[-1]) if net.activation == "tanh" else np.maximum(zs[-1], 0.0)
    return zs


def _smooth_rows(net, theta, x):
    """Samples whose finite differences do not cross a relu kink: every hidden |z| > KINK_MARGIN.

    With |theta| <= 2, |x| <= 3, widths <= 6 and directions |v_k| <= 1, sum_k |dz/dtheta_k| |v_k| <= ~320
    for any hidden unit, so a step h = 1e-6 moves z by at most 3.2e-4 < KINK_MARGIN: no kink is crossed.
    tanh is smooth: every row counts.
    """
    N = x.shape[0]
    if net.activation == "tanh":
        return np.ones(N, dtype=bool)
    ok = np.ones(N, dtype=bool)
    for z in _pre_activations(net, theta, x):
        ok &= np.all(np.abs(z) > KINK_MARGIN, axis=1)
    return ok


@st.composite
def st_net_case(draw, activation=None):
    """(net, theta, x, dout, v): a net from S.mlps, theta in [-2, 2], x in [-3, 3], dout and v in [-1, 1]."""
    net = draw(S.mlps(activation=activation))
    n = draw(S.batch_sizes())
    theta = draw(S.thetas(net.num_params))
    x = draw(S.observations(n, net.sizes[0]))
    dout = draw(S.st_matrix(n, net.sizes[-1], 1.0))
    v = draw(S.thetas(net.num_params, 1.0))
    return net, theta, x, dout, v


def _usable(net, theta, x):
    rows = _smooth_rows(net, theta, x)
    assume(rows.any())
    return rows


# ------------------------------------------------------------------ derivatives vs FD -------
@given(st_net_case())
def test_vjp_matches_finite_differences(case):
    net, theta, x, dout, v = case
    rows = _usable(net, theta, x)
    x, dout = x[rows], dout[rows]
    _, cache = net.forward(theta, x)
    g = net.backward(theta, dout, cache)                                         # (P,)
    f = lambda t: np.sum(dout * net.forward(t, x)[0])
    f_scale = np.abs(net.forward(theta, x)[0]).sum()
    assert_fd_close(g @ v, directional(f, theta, v), f_scale)                    # directional
    assert_fd_close(g, gradient(f, theta), f_scale)                              # per coordinate


@given(st_net_case())
def test_jvp_matches_finite_differences(case):
    net, theta, x, _, v = case
    rows = _usable(net, theta, x)
    x = x[rows]
    out, Jv = net.jvp(theta, x, v)                                               # (N, d_L) each
    np.testing.assert_array_equal(out, net.forward(theta, x)[0])
    f = lambda t: net.forward(t, x)[0]
    f_scale = np.abs(out).max()
    assert_fd_close(Jv, directional(f, theta, v), f_scale)                       # directional
    J_fd = gradient(f, theta)                                                    # (N, d_L, P)
    e = np.eye(net.num_params)
    J = np.stack([net.jvp(theta, x, e[k])[1] for k in range(net.num_params)], axis=-1)
    assert_fd_close(J, J_fd, f_scale)                                            # per coordinate


@given(st_net_case())
def test_jvp_and_vjp_are_adjoint(case):
    # <dout, J v> = <J^T dout, v> holds exactly up to rounding: relative 1e-12 of the summed magnitudes
    net, theta, x, dout, v = case
    out, Jv, cache = net.jvp_with_cache(theta, x, v)
    lhs, rhs = np.sum(dout * Jv), net.backward(theta, dout, cache) @ v
    scale = np.sum(np.abs(dout * Jv)) + np.abs(net.backward(theta, dout, cache)) @ np.abs(v)
    assert abs(lhs - rhs) <= 1e-12 * (1.0 + scale)


@given(st_net_case(), st.sampled_from(["numba", "numpy"]))
def test_persample_grads_sum_to_batch_gradient(case, backend):
    net, theta, x, dout, _ = case
    _, cache = net.forward(theta, x)
    G = net.persample_grads(theta, dout, cache, backend=backend)                 # (N, P)
    g = net.backward(theta, dout, cache)                                         # (P,)
    np.testing.assert_allclose(G.sum(axis=0), g, rtol=1e-12, atol=1e-12 * (1 + np.abs(G).sum()))
    for i in range(x.shape[0]):                                                  # row i: dout kept on i only
        only_i = np.zeros_like(dout)
        only_i[i] = dout[i]
        np.testing.assert_allclose(G[i], net.backward(theta, only_i, cache), rtol=1e-12, atol=1e-14)


@given(st_net_case())
def test_unchecked_passes_equal_checked_and_leave_inputs_alone(case):
    """check=False only skips validation: forward, backward and jvp return the same bits, and the
    in-place activation and derivative steps never write into x, theta, v or dout."""
    net, theta, x, dout, v = case
    keep = [a.copy() for a in (theta, x, dout, v)]
    out, cache = net.forward(theta, x)
    out_u, cache_u = net.forward(theta, x, check=False)
    np.testing.assert_array_equal(out_u, out)
    for h, h_u in zip(cache.hs, cache_u.hs):
        np.testing.assert_array_equal(h_u, h)
    np.testing.assert_array_equal(net.backward(theta, dout, cache_u, check=False), net.backward(theta, dout, cache))
    for a, b in zip(net.jvp_with_cache(theta, x, v, check=False)[:2], net.jvp_with_cache(theta, x, v)[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip((theta, x, dout, v), keep):
        np.testing.assert_array_equal(a, b)


@given(st_net_case(), st.data())
def test_workspace_passes_equal_fresh_passes_bit_for_bit(case, data):
    """The *_into passes write the same BLAS results into reused arrays: forward, backward and JVP give the same bits
    as fresh allocations, repeated calls with one workspace too, and a cached forward pass survives the
    JVPs and VJPs run from it (they write into their own arrays)."""
    net, theta, x, dout, v = case
    ws = net.workspace(x.shape[0])
    out, cache = net.forward(theta, x)
    out_w, cache_w = net.forward_into(ws, theta, x)
    assert out_w.base is ws.h[-1] or out_w is ws.h[-1]
    np.testing.assert_array_equal(out_w, out)
    for _ in range(2):                                       # repeated products from one cached pass
        v2 = data.draw(S.thetas(net.num_params, 1.0))
        np.testing.assert_array_equal(net.jvp_into(ws, theta, v2, cache_w), net.jvp_from_cache(theta, v2, cache))
        np.testing.assert_array_equal(net.backward_into(ws, theta, dout, cache_w), net.backward(theta, dout, cache))
        np.testing.assert_array_equal(out_w, out)             # the forward results were not overwritten
        for h, h_w in zip(cache.hs, cache_w.hs):
            np.testing.assert_array_equal(h_w, h)
    theta2 = data.draw(S.thetas(net.num_params))            # a second forward overwrites the first
    out2_w, _ = net.forward_into(ws, theta2, x)
    np.testing.assert_array_equal(out2_w, net.forward(theta2, x)[0])


def test_workspace_for_another_batch_size_or_network_is_refused():
    net, other = MLP((2, 3, 2)), MLP((2, 4, 2))
    theta, x = np.zeros(net.num_params), np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"ws: expected MLP.workspace\(5\) .*got a workspace for sizes "
                                         r"\(2, 3, 2\) and N = 4\. Fix: "):
        net.forward_into(net.workspace(4), theta, x)
    with pytest.raises(ValueError, match=r"ws: expected MLP.workspace\(5\) of this network \(sizes \(2, 3, 2\)\)"):
        net.forward_into(other.workspace(5), theta, x)
    _, cache = net.forward(theta, x)
    with pytest.raises(ValueError, match=r"ws: expected .*got dict"):
        net.backward_into({}, theta, np.zeros((5, 2)), cache)
    with pytest.raises(ValueError, match=r"N: expected an integer >= 1, got 0\. Fix: pass the number of rows"):
        net.workspace(0)


@given(st_net_case())
def test_forward_matches_layout_by_hand(case):
    # an independent forward pass that slices theta by the contract: W_l (d_l, d_{l-1}) row-major, then b_l
    net, theta, x, _, _ = case
    h, off = x, 0
    for l, (d_in, d_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        W = theta[off:off + d_out * d_in].reshape(d_out, d_in)
        b = theta[off + d_out * d_in:off + d_out * d_in + d_out]
        off += d_out * d_in + d_out
        z = np.einsum("nk,jk->nj", h, W) + b
        h = z if l == net.num_layers - 1 else (np.tanh(z) if net.activation == "tanh" else np.maximum(z, 0))
    assert off == net.num_params
    np.testing.assert_allclose(net.forward(theta, x)[0], h, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------ a tiny net computed by hand ----
# sizes (2, 3, 2), tanh. theta in the layout W1 (3x2 row-major), b1, W2 (2x3 row-major), b2.
W1 = [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]]
B1 = [0.01, -0.02, 0.03]
W2 = [[0.7, -0.8, 0.9], [-1.0, 1.1, -1.2]]
B2 = [0.05, -0.06]
THETA_TINY = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.01, -0.02, 0.03, 0.7, -0.8, 0.9, -1.0, 1.1, -1.2, 0.05, -0.06]
X_TINY = [0.5, -1.0]
# z1 = W1 x + b1 by hand: 0.05 + 0.2 + 0.01, 0.15 - 0.4 - 0.02, -0.25 - 0.6 + 0.03
Z1_TINY = [0.26, -0.27, -0.82]
# out = W2 tanh(z1) + b2, evaluated with math.tanh outside purepg:
OUT_TINY = [-0.1686561461385106, 0.2058009981605145]


def test_tiny_network_by_hand():
    net = MLP((2, 3, 2), "tanh")
    assert net.num_params == 17
    h = [math.tanh(z) for z in Z1_TINY]
    out_formula = [sum(W2[i][j] * h[j] for j in range(3)) + B2[i] for i in range(2)]
    np.testing.assert_allclose(out_formula, OUT_TINY, rtol=0, atol=1e-15)
    out, cache = net.forward(np.array(THETA_TINY), np.array([X_TINY]))
    np.testing.assert_allclose(out[0], OUT_TINY, rtol=0, atol=1e-15)
    # VJP with dout = (1, -2): dW2 = dout h^T, db2 = dout, dz1 = (W2^T dout) * (1 - h^2), dW1 = dz1 x^T
    dout = [1.0, -2.0]
    dz1 = [(W2[0][j] * dout[0] + W2[1][j] * dout[1]) * (1 - h[j] ** 2) for j in range(3)]
    expect = ([dz1[j] * X_TINY[k] for j in range(3) for k in range(2)] + dz1
              + [dout[i] * h[j] for i in range(2) for j in range(3)] + dout)
    g = net.backward(np.array(THETA_TINY), np.array([dout]), cache)
    np.testing.assert_allclose(g, expect, rtol=0, atol=1e-15)
    # unflatten agrees with the written blocks
    (w1, b1), (w2, b2) = net.unflatten(np.array(THETA_TINY))
    assert w1.tolist() == W1 and b1.tolist() == B1 and w2.tolist() == W2 and b2.tolist() == B2


def test_linear_network_hidden_empty():
    # hidden=() : out = x W^T + b exactly, and the score of a linear map is (dout x^T, dout)
    net = MLP((3, 2))
    theta = np.arange(8.0) / 10                                                  # W = [[0,.1,.2],[.3,.4,.5]], b = [.6,.7]
    x = np.array([[1.0, 2.0, 3.0]])
    out, cache = net.forward(theta, x)
    np.testing.assert_allclose(out, [[0.8 + 0.6, 2.6 + 0.7]], rtol=0, atol=1e-15)
    G = net.persample_grads(theta, np.array([[1.0, -1.0]]), cache)
    np.testing.assert_array_equal(G, [[1, 2, 3, -1, -2, -3, 1, -1]])


# -------------------------------------------------------------------------- init ------------
@given(S.layer_sizes(max_width=12), st.integers(0, 2**32 - 1), st.floats(0.01, 3.0))
def test_orthogonal_init(sizes, seed, g):
    # W W^T = g^2 I when d_out <= d_in (orthonormal rows), else W^T W = g^2 I; biases are exactly zero
    net = MLP(sizes)
    gains = (g,) * net.num_layers
    theta = net.init(np.random.default_rng(seed), gains)
    for W, b in net.unflatten(theta):
        G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
        np.testing.assert_allclose(G, g * g * np.eye(G.shape[0]), rtol=0, atol=1e-13 * max(1, g * g))
        assert np.all(b == 0.0)
    np.testing.assert_array_equal(theta, net.init(np.random.default_rng(seed), gains))   # determinism


def test_default_gains_and_policy_head_gain():
    net = MLP((4, 8, 8, 2))
    W = [w for w, _ in net.unflatten(net.init(np.random.default_rng(0)))]
    assert np.allclose(W[0].T @ W[0], 2 * np.eye(4)) and np.allclose(W[1] @ W[1].T, 2 * np.eye(8)) and np.allclose(W[2] @ W[2].T, np.eye(2))
    pol = purepg.CategoricalPolicy(4, 2, (8, 8))
    Wh = pol.net.unflatten(pol.init(np.random.default_rng(0)))[-1][0]
    assert np.allclose(Wh @ Wh.T, 1e-4 * np.eye(2))                             # head gain 0.01


def test_torch_scheme_is_uniform_within_one_over_sqrt_fan_in():
    """scheme="torch": every weight and bias of layer l in [-b, b], b = 1/sqrt(d_in); on a 400 x 300
    layer the sample max reaches 0.999 b and the mean and variance are 0 and b^2/3 within 5 standard
    errors (var of U(-b, b) is b^2/3; of its sample variance, (b^4/5 - b^4/9)/n). The orthogonal
    default would fail the bound (entries up to ~0.25 > 1/sqrt(300)) or the variance."""
    net = MLP((300, 400, 3))
    theta = net.init(np.random.default_rng(0), scheme="torch")
    np.testing.assert_array_equal(theta, net.init(np.random.default_rng(0), scheme="torch"))   # seeded
    for (W, b), d_in in zip(net.unflatten(theta), net.sizes[:-1]):
        bound = 1.0 / math.sqrt(d_in)
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    W = net.unflatten(theta)[0][0]
    bound, n = 1.0 / math.sqrt(300), W.size
    assert np.abs(W).max() > 0.999 * bound
    assert abs(W.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(W.var() - bound**2 / 3) < 5 * bound**2 * math.sqrt((1 / 5 - 1 / 9) / n)
    with pytest.raises(ValueError, match=r"scheme: expected one of \('orthogonal', 'torch'\), got 'xavier'\. Fix: "):
        net.init(np.random.default_rng(0), scheme="xavier")


def test_torch_scheme_matches_torch_linear_default():
    """Optional cross-check (skips without torch): a fresh torch.nn.Linear(300, 400) has the same bound
    (its max |w| within [0.999, 1] x 1/sqrt(300)) and the same variance within 5 standard errors."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(300, 400).double()
    ours = MLP((300, 400)).unflatten(MLP((300, 400)).init(np.random.default_rng(1), scheme="torch"))[0]
    bound = 1.0 / math.sqrt(300)
    for W, b in ((lin.weight.detach().numpy(), lin.bias.detach().numpy()), ours):
        assert 0.999 * bound < np.abs(W).max() <= bound and np.abs(b).max() <= bound
        assert abs(W.var() - bound**2 / 3) < 5 * bound**2 * math.sqrt((1 / 5 - 1 / 9) / W.size)


def test_policy_and_value_function_pass_the_scheme_on():
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    pol = purepg.GaussianPolicy(4, 2, (8,), log_std_init=-1.0, init_scheme="torch")
    theta = pol.init(rng())
    np.testing.assert_array_equal(theta[:pol.net.num_params], pol.net.init(rng(), scheme="torch"))   # no gains
    np.testing.assert_array_equal(theta[pol.net.num_params:], [-1.0, -1.0])
    vf = ValueFunction(4, (8,), init_scheme="torch")
    np.testing.assert_array_equal(vf.init(rng()), vf.net.init(rng(), scheme="torch"))
    for make in (lambda: purepg.CategoricalPolicy(4, 2, init_scheme="he"), lambda: ValueFunction(4, init_scheme="he")):
        with pytest.raises(ValueError, match=r"init_scheme: expected one of \('orthogonal', 'torch'\), got 'he'"):
            make()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 6), (6, 1)])
def test_orthogonal_matrix_shapes(shape):
    Q = orthogonal(shape, np.random.default_rng(1))
    assert Q.shape == shape
    G = Q @ Q.T if shape[0] <= shape[1] else Q.T @ Q
    np.testing.assert_allclose(G, np.eye(min(shape)), atol=1e-14)


# --------------------------------------------------------------------------- bad input -------
NET = MLP((2, 3, 2))
TH = np.zeros(NET.num_params)


@pytest.mark.parametrize("call, match", [
    (lambda: MLP((3,)), r"sizes: expected at least two positive layer sizes.*got \(3,\)"),
    (lambda: MLP((3, 0, 2)), r"sizes: expected at least two positive.*got \(3, 0, 2\)"),
    (lambda: MLP((3, 2.5)), r"sizes: expected integer layer sizes.*got \(3, 2.5\)"),
    (lambda: MLP((3, 2), "sigmoid"), r"activation: expected one of \('tanh', 'relu'\), got 'sigmoid'"),
    (lambda: NET.forward(np.zeros(16), np.zeros((1, 2))), r"theta: expected shape \(17,\), got \(16,\)"),
    (lambda: NET.forward(np.zeros((17, 1)), np.zeros((1, 2))), r"theta: expected shape \(17,\), got \(17, 1\)"),
    (lambda: NET.forward(TH, np.zeros(2)), r"x: expected shape \(N, 2\), got \(2,\)"),
    (lambda: NET.forward(TH, np.zeros((1, 3))), r"x: expected shape \(N, 2\), got \(1, 3\)"),
    (lambda: NET.forward(TH, [["a", "b"]]), r"x: expected a numeric array, got dtype <U1"),
    (lambda: NET.forward(TH, np.zeros((1, 2), complex)), r"x: expected real numbers, got complex dtype complex128"),
    (lambda: NET.forward(TH, [[0.0, np.nan]]), r"x: expected finite values, got nan at index \(0, 1\)"),
    (lambda: NET.forward(np.full(17, np.inf), np.zeros((1, 2))), r"theta: expected finite values, got inf at index 0\. Fix"),
    (lambda: NET.jvp(TH, np.zeros((1, 2)), np.zeros(3)), r"v: expected shape \(17,\), got \(3,\)"),
    (lambda: NET.backward(TH, np.zeros((2, 2)), NET.forward(TH, np.zeros((1, 2)))[1]),
     r"dout: expected shape \(1, 2\), got \(2, 2\)"),
    (lambda: NET.init(0), r"rng: expected a numpy.random.Generator, got int"),
    (lambda: NET.init(np.random.default_rng(0), (1.0,)), r"gains: expected 2 values \(one per layer\), got 1"),
])
def test_bad_input_messages(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        call()
    assert ". Fix: " in str(err.value)                                           # every message says how to fix it


def test_bad_input_messages_state_the_fix():
    # every message from input checking ends with a hint on how to fix the call
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\), got \(2,\)\. Fix: .*x\[None\]"):
        NET.forward(TH, np.zeros(2))
    with pytest.raises(ValueError, match=r"theta: .*got \(16,\)\. Fix: .*num_params"):
        NET.forward(np.zeros(16), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"x: expected finite values.*\. Fix: .*(NaN|nan|inf)"):
        NET.forward(TH, [[0.0, np.inf]])
