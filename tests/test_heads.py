"""purepg.kernels.heads: a minibatch step's value and policy terms in one kernel call each, bit for bit.

The kernels call the compiled pieces the step-by-step path calls (the one-call passes, the log-softmax,
NumPy's pairwise sums), in the same order, so they are compared exactly (``assert_array_equal``) with
that path -- ``value_loss`` and ``Policy.log_prob_with_vjp`` with a workspace and the kernels switched
off (``heads.ready`` False) -- and with their NumPy references: exactly for the backward pass and the
value loss, to :func:`purepg.kernels.categorical_log_prob_and_grad`'s stated accuracy for the
log-probabilities (the C library's ``exp``/``log`` against NumPy's). Hypothesis draws the layer sizes,
batch sizes and values; a whole PPO run with and without the kernels writes the same bits.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purepg.kernels import blas, heads
from purepg.model import policy as policy_module
from purepg.model.policy import CategoricalPolicy
from purepg.model.value import ValueFunction, value_loss

pytestmark = pytest.mark.skipif(not blas.AVAILABLE, reason=f"no one-call passes here: {blas.REASON}")


@st.composite
def st_case(draw):
    """(obs_dim, hidden, n_actions, N, seed): inputs 1-6, 1-3 hidden layers of 2-70 units, 2-5 actions, N 2-300."""
    hidden = tuple(draw(st.lists(st.integers(2, 70), min_size=1, max_size=3)))
    return (draw(st.integers(1, 6)), hidden, draw(st.integers(2, 5)), draw(st.integers(2, 300)),
            draw(st.integers(0, 2**32 - 1)))


def _switched(monkeypatch, on):
    monkeypatch.setattr(heads, "ready", lambda: on)


def _value_terms(vf, theta_v, x, R):
    ws = vf.net.workspace(x.shape[0])
    obj = value_loss(vf.net, theta_v, x, R, check=False, ws=ws)
    return obj.value, obj.grad.copy()


@settings(max_examples=40, deadline=None)
@given(st_case())
def test_value_term_equals_the_step_by_step_path_and_the_reference(case):
    d, hidden, _, N, seed = case
    rng = np.random.default_rng(seed)
    vf = ValueFunction(d, hidden, "tanh")
    theta_v = vf.init(rng) * rng.uniform(0.5, 3.0) + 0.1 * rng.standard_normal(vf.net.num_params)
    x, R = 3.0 * rng.standard_normal((N, d)), 10.0 * rng.standard_normal(N)
    with pytest.MonkeyPatch.context() as m:
        _switched(m, True)
        fused = _value_terms(vf, theta_v, x, R)
        _switched(m, False)
        steps = _value_terms(vf, theta_v, x, R)
    assert fused[0] == steps[0]
    np.testing.assert_array_equal(fused[1], steps[1])
    ws, g = vf.net.workspace(N), np.full(vf.net.num_params, np.nan)
    assert heads.half_mse_and_grad(theta_v, vf.net._layout_array, (x, *ws.h), R, ws.dz, g, backend="numpy") == fused[0]
    np.testing.assert_array_equal(g, fused[1])


def _policy_terms(pol, theta, x, a, w):
    ws = pol.net.workspace(x.shape[0])
    logp, vjp = pol.log_prob_with_vjp(theta, x, a, check=False, ws=ws)
    return logp.copy(), vjp(w)


@settings(max_examples=40, deadline=None)
@given(st_case())
def test_policy_term_equals_the_step_by_step_path_and_the_reference(case):
    d, hidden, A, N, seed = case
    rng = np.random.default_rng(seed)
    pol = CategoricalPolicy(d, A, hidden, "tanh")
    theta = pol.init(rng) * rng.uniform(0.5, 3.0) + 0.1 * rng.standard_normal(pol.num_params)
    x, a, w = 3.0 * rng.standard_normal((N, d)), rng.integers(0, A, N), rng.standard_normal(N)
    with pytest.MonkeyPatch.context() as m:
        _switched(m, True)
        calls = []
        m.setattr(policy_module.Policy, "_log_prob_with_vjp_one_call",
                  lambda self, *args, f=policy_module.Policy._log_prob_with_vjp_one_call: calls.append(1) or f(self, *args))
        fused = _policy_terms(pol, theta, x, a, w)
        assert calls, "the fused path was not taken: this test would compare the step-by-step path with itself"
        _switched(m, False)
        steps = _policy_terms(pol, theta, x, a, w)
    for got, want in zip(fused, steps):
        np.testing.assert_array_equal(got, want)
    layout, ws = pol.net._layout_array, pol.net.workspace(N)
    logp, d_out = heads.categorical_forward_log_prob(theta, layout, (x, *ws.h), a, backend="numpy")
    np.testing.assert_allclose(logp, fused[0], rtol=0, atol=8 * np.finfo(float).eps * (1 + np.abs(logp)).max())
    _, d_out_k = heads.categorical_forward_log_prob(theta, layout, (x, *ws.h), a)
    g = heads.weighted_backward(theta, layout, w, d_out_k, (x, *ws.h[:-1]), ws.dz, np.empty(pol.num_params),
                                backend="numpy")
    np.testing.assert_array_equal(g, fused[1])                 # the same d_out: the backward pass bit for bit


def test_an_action_out_of_range_raises_as_indexing_does():
    pol, rng = CategoricalPolicy(3, 2, (8,), "tanh"), np.random.default_rng(0)
    ws, x = pol.net.workspace(4), rng.standard_normal((4, 3))
    with pytest.raises(IndexError):
        heads.categorical_forward_log_prob(pol.init(rng), pol.net._layout_array, (x, *ws.h), np.array([0, 1, 2, 0]))


def test_ready_needs_every_kernel_compiled_or_cached(monkeypatch, tmp_path):
    class Cached:                                   # a dispatcher's cache, as Numba lays it out
        def __init__(self, path):
            self._cache = type("C", (), {"_cache_file": type("F", (), {"_index_path": str(path)})()})()
            self.signatures = []

    there = tmp_path / "k.nbi"
    there.write_text("")
    monkeypatch.setattr(heads, "_ready", [])
    monkeypatch.setattr(heads, "KERNELS", (Cached(there), Cached(tmp_path / "missing.nbi")))
    assert heads.ready() is False and heads._ready == []          # asked again on the next call
    heads.KERNELS[1].signatures = ["compiled in this process"]
    assert heads.ready() is True and heads._ready == [True]


def test_a_ppo_run_takes_the_same_steps_with_and_without_the_kernels(monkeypatch, tmp_path):
    """Two iterations of rl-zoo's CartPole PPO (40 minibatch steps): the same parameters, Adam moments and
    logs, bit for bit, whether the minibatch steps call the kernels or the step-by-step passes."""
    from purepg.algos import ppo
    from purepg.run import runner

    results = {}
    for on in (True, False):
        _switched(monkeypatch, on)
        summary = runner.train(ppo, "CartPole-v1", ppo.Config(), seed=3, out_dir=str(tmp_path / str(on)),
                               total_steps=512, verbose=False)
        ck = np.load(tmp_path / str(on) / "checkpoint.npz", allow_pickle=True)
        results[on] = (summary["last_row"], {k: ck[k] for k in ck.files if ck[k].dtype.kind == "f"})
    (row1, ck1), (row0, ck0) = results[True], results[False]
    assert {k: v for k, v in row1.items() if k not in ("time_s", "sps")} == \
        {k: v for k, v in row0.items() if k not in ("time_s", "sps")}
    for k in ck1:
        if k != "loop/time_s":
            np.testing.assert_array_equal(ck1[k], ck0[k], err_msg=k)


@pytest.mark.parametrize("call", [
    lambda: heads.half_mse_and_grad(None, None, (), np.zeros(1), (), None, backend="torch"),
    lambda: heads.categorical_forward_log_prob(None, None, (np.zeros((1, 1)),), None, backend="torch"),
    lambda: heads.weighted_backward(None, None, None, np.zeros((1, 2)), (), (), None, backend="torch")])
def test_an_unknown_backend_is_named(call):
    with pytest.raises(ValueError, match="backend: expected 'numba' or 'numpy', got 'torch'"):
        call()
