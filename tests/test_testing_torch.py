"""purepg.testing pointed at PyTorch code: a small PyTorch PPO / TRPO written for this suite passes every
check; each planted bug is caught with a minimal example; Stable-Baselines3's own policy is checked
through its ``evaluate_actions``; the PyTorch and JAX adapters keep purepg's layout."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import purepg.testing as T                       # noqa: E402
from helpers.torch_pg import BUGS, implementation  # noqa: E402
from purepg.testing import torch as tpg          # noqa: E402

N_EX = 10

# CleanRL's conventions are what torch's defaults give (ddof-1 std + 1e-8, clip_grad_norm_, Adam eps 1e-5)
TestTorchPPOAndTRPO = T.suite(profile="cleanrl", max_examples=N_EX, **implementation())


@pytest.mark.parametrize("bug, quantity, profile, shows", [
    ("advantage_normalization", "ppo_update", "cleanrl", "adv = np.array(["),
    ("gae_truncation", "gae", "purepg", "truncated = np.array([[ True]]"),
    ("kl_direction", "kl", "purepg", "theta_new = np.array(["),
    ("entropy_sign", "entropy", "purepg", "yours:  np.array([-"),
])
def test_each_planted_bug_is_caught_with_a_minimal_example(bug, quantity, profile, shows):
    assert bug in BUGS
    check = T.CHECKS[quantity]
    kw = {"profile": profile} if quantity == "ppo_update" else {}
    with pytest.raises(T.Mismatch) as e:
        check(implementation([bug])[quantity], max_examples=40, **kw)
    msg = str(e.value)
    assert msg.startswith(quantity) and shows in msg and "first entry outside the tolerance" in msg
    assert "hidden=()" in msg or quantity == "gae"                   # shrunk to the smallest network


def test_sequential_and_load_keep_purepg_layout():
    spec = T.PolicySpec("categorical", 3, 2, (5, 4), "tanh")
    pol = spec.policy()
    theta = pol.init(np.random.default_rng(0))
    net = tpg.load(tpg.sequential(spec), theta)
    np.testing.assert_array_equal(tpg.flat(net), theta)
    obs = np.random.default_rng(1).standard_normal((6, 3))
    np.testing.assert_allclose(net(tpg.tensor(obs)).detach().numpy(), pol.net.forward(theta, obs)[0], rtol=1e-13)
    with pytest.raises(ValueError, match=f"theta: expected {theta.size} entries"):
        tpg.load(net, theta[:-1])


def test_stable_baselines3_policy_is_float64_only_with_its_observation_cast_removed():
    pytest.importorskip("stable_baselines3")
    from helpers.sb3_policy import implementation as sb3
    T.check_log_prob(sb3()["log_prob"], max_examples=N_EX)
    T.check_entropy(sb3()["entropy"], max_examples=N_EX)
    with pytest.raises(T.Mismatch, match="log_prob: your function raised RuntimeError: mat1 and mat2 must have"):
        T.check_log_prob(sb3(keep_float64=False)["log_prob"], max_examples=3)


def test_jax_layout_round_trips_and_runs_the_mlp():
    pytest.importorskip("jax")
    from purepg.testing import jax as jpg
    spec = T.PolicySpec("gaussian", 2, 3, (4,), "relu")
    pol = spec.policy()
    theta = pol.init(np.random.default_rng(0))[:pol.net.num_params]
    layout = jpg.sequential_layout(spec)
    tree = jpg.unflatten(theta, layout)
    np.testing.assert_array_equal(jpg.flatten(tree, layout), theta)
    obs = np.random.default_rng(1).standard_normal((5, 2))
    np.testing.assert_allclose(np.asarray(jpg.mlp(tree, spec, obs)), pol.net.forward(theta, obs)[0], rtol=1e-13)
