"""purepg.kernels.passes (and .blas): a tanh MLP's passes in one kernel call, bit for bit.

Each product inside a kernel is NumPy's own BLAS routine called with the arguments ``numpy.matmul``
passes for the same operands, and each elementwise step is the loop the step-by-step pass calls, so
the comparisons here are exact (``assert_array_equal``): against the NumPy references of the module,
and against the step-by-step passes of :class:`purepg.model.nn.MLP` (its ``_one_call`` switched off).
Nothing here depends on how a BLAS rounds: both sides call the same library on the same arguments.
The products are checked alone too, over operand shapes with a dimension of 1 (where NumPy takes
``gemv`` or a plain loop instead of ``gemm``).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import compile_events
from purepg.kernels import blas, passes
from purepg.model.nn import MLP
from purepg.model.value import ValueFunction

pytestmark = pytest.mark.skipif(not blas.AVAILABLE, reason=f"no one-call passes here: {blas.REASON}")


@st.composite
def st_case(draw):
    """(sizes, N, seed): inputs 1-6, 1-3 hidden layers of 2-70 units, heads of 1-4, N 2-300 rows."""
    hidden = draw(st.lists(st.integers(2, 70), min_size=1, max_size=3))
    sizes = (draw(st.integers(1, 6)), *hidden, draw(st.integers(1, 4)))
    return sizes, draw(st.integers(2, 300)), draw(st.integers(0, 2**32 - 1))


def _arrays(sizes, N, seed):
    """theta (scaled so some units saturate), x, dout (a column view for a 1-unit head, as the value
    loss passes it), v: float64 from ``seed``."""
    rng = np.random.default_rng(seed)
    net = MLP(sizes)
    theta = net.init(rng) * rng.uniform(0.5, 3.0) + 0.1 * rng.standard_normal(net.num_params)
    x = 3.0 * rng.standard_normal((N, sizes[0]))
    dout = rng.standard_normal(N)[:, None] if sizes[-1] == 1 else rng.standard_normal((N, sizes[-1]))
    return net, theta, x, dout, rng.standard_normal(net.num_params)


def _three_passes(net, theta, x, dout, v):
    ws = net.workspace(x.shape[0])
    out, cache = net.forward_into(ws, theta, x)
    g = net.backward_into(ws, theta, dout, cache)
    Jv = net.jvp_into(ws, theta, v, cache)
    return out.copy(), g.copy(), Jv.copy(), net.backward(theta, dout, cache)   # the last without a workspace


@settings(max_examples=60, deadline=None)
@given(st_case())
def test_one_call_passes_equal_the_step_by_step_passes(case):
    net, theta, x, dout, v = _arrays(*case)
    assert passes.fits(net.sizes, x.shape[0], theta, x, dout)
    one_call = _three_passes(net, theta, x, dout, v)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(MLP, "_one_call", lambda self, *a: False)
        steps = _three_passes(net, theta, x, dout, v)
    for a, b in zip(one_call, steps):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(st_case())
def test_kernels_equal_their_numpy_references(case):
    net, theta, x, dout, v = _arrays(*case)
    layout, N = net._layout_array, x.shape[0]
    got, ref = net.workspace(N), net.workspace(N)
    out = passes.mlp_forward(theta, layout, (x, *got.h)).copy()
    np.testing.assert_array_equal(out, passes.mlp_forward(theta, layout, (x, *ref.h), backend="numpy"))
    hs = (x, *got.h[:-1])
    d1, d2 = np.full(net.num_params, np.nan), np.full(net.num_params, np.nan)
    passes.mlp_backward(theta, layout, dout, hs, got.dz, d1)
    passes.mlp_backward(theta, layout, dout, hs, ref.dz, d2, backend="numpy")
    np.testing.assert_array_equal(d1, d2)                  # a 1-unit head's bias entry: NaN in both (left unset)
    assert np.isnan(d1[-1]) == (net.sizes[-1] == 1)
    J1 = passes.mlp_jvp(theta, v, layout, hs, got.jz, got.jt).copy()
    np.testing.assert_array_equal(J1, passes.mlp_jvp(theta, v, layout, hs, ref.jz, ref.jt, backend="numpy"))


@pytest.mark.parametrize("N, n, k", [(7, 1, 1), (7, 1, 5), (7, 5, 1), (7, 5, 3), (64, 64, 64), (300, 2, 64)])
def test_each_product_equals_numpy_matmul(N, n, k):
    """``A W^T``, ``A W`` and ``A^T H`` with inner or outer dimensions of 1: NumPy's gemv / loop cases."""
    rng = np.random.default_rng(N * 100 + n * 10 + k)
    A, W, H = rng.standard_normal((N, k)), rng.standard_normal(n * k), rng.standard_normal((N, k))
    B = rng.standard_normal((N, n))
    for kernel, ref, a, b, shape, flag in ((passes._matmul, passes._matmul_numpy, A, W, (N, n), (True,)),
                                           (passes._matmul, passes._matmul_numpy, B, W, (N, k), (False,)),
                                           (passes._matmul_tn, passes._matmul_tn_numpy, B, H, (n * k,), ())):
        if kernel is passes._matmul_tn and n == 1 and k == 1:
            continue                                        # a dot product: outside the kernels' scope
        c1, c2 = np.full(shape, np.nan), np.full(shape, np.nan)
        kernel(a, b, c1, *flag)
        ref(a, b, c2, *flag)
        np.testing.assert_array_equal(c1, c2)


def test_a_signed_zero_of_the_head_bias_sum_is_numpys():
    """eq. (5) at the head sums rows from +0, as NumPy: a head whose every cotangent is -0.0 gets +0.0."""
    net = MLP((3, 4, 2))
    rng = np.random.default_rng(0)
    theta, x = net.init(rng), rng.standard_normal((5, 3))
    ws = net.workspace(5)
    out, cache = net.forward_into(ws, theta, x)
    g = net.backward_into(ws, theta, np.full((5, 2), -0.0), cache)
    assert np.all(np.signbit(g[-2:]) == np.signbit(np.full((5, 2), -0.0).sum(axis=0)))


def test_what_the_kernels_do_not_take_goes_step_by_step():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3))
    assert passes.fits((3, 4, 2), 8, x)
    assert not passes.fits((3, 4, 2), 1, x[:1])                         # one row: NumPy takes gemv / dot
    assert not passes.fits((3, 1, 2), 8, x)                             # a 1-unit hidden layer
    assert not passes.fits((3, 2), 8, x)                                # no hidden layer
    assert not passes.fits((3, 4, 2), 8, x[:, ::-1].T.T[:, ::1][::2])   # a strided view
    ro = x.copy()
    ro.flags.writeable = False
    assert not passes.fits((3, 4, 2), 8, ro)
    relu = MLP((3, 4, 2), "relu")
    assert not relu._one_call(8, x)
    # each case still computes, through the step-by-step passes
    theta = relu.init(rng)
    out, _ = relu.forward_into(relu.workspace(8), theta, x)
    np.testing.assert_array_equal(out, relu.forward(theta, x)[0])


def test_value_network_gradient_through_one_call_equals_step_by_step(monkeypatch):
    """The value loss's backward: a (N, 1) column view as ``dout``, the head's bias by NumPy's own sum."""
    vf = ValueFunction(4, (64, 64))
    rng = np.random.default_rng(3)
    theta_v, obs, target = vf.init(rng), rng.standard_normal((256, 4)), rng.standard_normal(256)
    ws = vf.net.workspace(256)
    a = vf.loss(theta_v, obs, target, check=False, ws=ws)
    monkeypatch.setattr(MLP, "_one_call", lambda self, *args: False)
    b = vf.loss(theta_v, obs, target, check=False, ws=vf.net.workspace(256))
    assert a.value == b.value
    np.testing.assert_array_equal(a.grad, b.grad)


def test_switched_off_by_the_environment_and_says_why():
    code = "from purepg.kernels import blas; print(blas.AVAILABLE, '|', blas.REASON)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PUREPG_FUSED": "0"}).stdout
    assert out.strip() == "False | PUREPG_FUSED=0 is set"


def _progress_without_clock(path):
    import csv
    return [{k: v for k, v in row.items() if k not in ("time_s", "sps")} for row in csv.DictReader(open(path))]


def test_a_run_with_the_passes_switched_off_has_the_same_bits(tmp_path):
    """``PUREPG_FUSED=0`` (the step-by-step passes, as where NumPy has another BLAS): a PPO and a TRPO run
    write the same progress rows and checkpoint arrays as with the one-call passes."""
    from helpers import cli_process
    for algo, steps in (("ppo", "2048"), ("trpo", "2048")):
        runs = {}
        for fused in ("1", "0"):
            out = tmp_path / f"{algo}_{fused}"
            env = {**cli_process.env(), "PUREPG_FUSED": fused, "PUREPG_COMPILE_AHEAD": "0"}
            subprocess.run([sys.executable, "-m", "purepg", "train", "--algo", algo, "--env", "Acrobot-v1",
                            "--steps", steps, "--seed", "4", "--out", str(out)], env=env, check=True,
                           capture_output=True, cwd=tmp_path)
            runs[fused] = (_progress_without_clock(out / "progress.csv"), np.load(out / "checkpoint.npz", allow_pickle=True))
        (rows1, ck1), (rows0, ck0) = runs["1"], runs["0"]
        assert rows1 == rows0 and len(rows1) >= 2
        for k in ck1.files:
            if ck1[k].dtype.kind == "f" and k != "loop/time_s":
                np.testing.assert_array_equal(ck1[k], ck0[k], err_msg=k)


def test_add_rows_equals_broadcasting():
    rng = np.random.default_rng(5)
    z, b = rng.standard_normal((7, 3)), rng.standard_normal(3)
    a, r = z.copy(), z.copy()
    passes._add_rows(a, b)
    passes._add_rows_numpy(r, b)
    np.testing.assert_array_equal(a, r)
    assert not np.array_equal(a, z)


COMPILE_EVENTS = compile_events.LISTEN + """
import numpy as np
from purepg.model.nn import MLP, MLPCache
net, rng = MLP((4, 64, 64, 2), "tanh"), np.random.default_rng(0)
theta, x = net.init(rng), rng.standard_normal((32, 4))
ws = net.workspace(32)
net.forward_into(ws, theta, x)
net.backward_into(ws, theta, rng.standard_normal((32, 2)), MLPCache((x, *ws.h[:-1])))
print(" ".join(sorted(set(names) - {"impl"})))
"""


def test_the_passes_compile_as_one_function_each(tmp_path):
    """A pass's small kernels are compiled into it (``inline="always"``, module docstring of
    :mod:`purepg.kernels.passes`): on an empty Numba cache a forward and a backward pass compile the two
    passes and no kernel of their own for the products, the bias rows, the tanh or ``dphi_mul``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", COMPILE_EVENTS], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    assert set(out) == {"_mlp_forward_numba", "_mlp_backward_numba"}, out
