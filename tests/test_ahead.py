"""purepg.run.ahead: a first run's update kernels compiled in a second process.

The process is worth its core only if it compiles the kernels the run's update calls *with the same
signatures*; otherwise the run compiles them again and nothing is gained. So the main test fills an
empty Numba cache with :func:`compile_update` alone, then trains one iteration in another process on
that cache with a listener on Numba's compile event: none of the update's kernels may be compiled
there (the rollout's are, since the compiling process never acts).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import purepg
from helpers import compile_events
from purepg.algos import ppo, trpo
from purepg.run import ahead
from purepg.run.runner import config_to_dict

UPDATE_KERNELS = {"_mlp_backward_numba", "_mlp_jvp_numba", "_minibatch_rows_numba", "_gae_numba",
                  "_adam_update_numba", "_categorical_log_prob_and_grad_numba", "_clip_terms_numba",
                  "_half_mse_and_grad_numba", "_categorical_forward_log_prob_numba", "_weighted_backward_numba"}

LISTEN = compile_events.LISTEN + """
import sys
from purepg.cli import main
try:
    main(["train", "--algo", sys.argv[1], "--env", sys.argv[2], "--steps", sys.argv[3], "--out", sys.argv[4]])
except SystemExit as e:
    assert not e.code, e.code
print("COMPILED", " ".join(sorted(set(names))))
"""


@pytest.mark.parametrize("algo, Config, env, obs_dim, discrete, act, steps", [
    ("ppo", ppo.Config, "CartPole-v1", 4, True, 2, "256"),
    ("trpo", trpo.Config, "Pendulum-v1", 3, False, 1, "1024")])
def test_after_compile_ahead_a_run_compiles_none_of_its_update_kernels(tmp_path, algo, Config, env, obs_dim,
                                                                       discrete, act, steps):
    """After the compiling process alone, a run compiles none of its update's kernels; after a Gaussian
    policy's process, the categorical fused kernels of :mod:`purepg.kernels.heads` are cached too."""
    env_vars = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PUREPG_COMPILE_AHEAD": "0"}
    spec = {"algo": algo, "config": config_to_dict(Config()), "obs_dim": obs_dim, "discrete": discrete, "act": act}
    subprocess.run([sys.executable, "-c", "from purepg.run import ahead; ahead.main()"], input=json.dumps(spec),
                   text=True, env=env_vars, check=True, capture_output=True)
    from purepg.kernels import blas
    if not discrete and blas.AVAILABLE:          # a Gaussian policy's process compiles the categorical fused
        ready = subprocess.run([sys.executable, "-c", "from purepg.kernels import heads; print(heads.ready())"],
                               text=True, env=env_vars, check=True, capture_output=True).stdout
        assert ready.strip() == "True"           # kernels too, so heads.ready holds for the next run
    out = subprocess.run([sys.executable, "-c", LISTEN, algo, env, steps, str(tmp_path / "run")], text=True,
                         env=env_vars, check=True, capture_output=True).stdout
    compiled = set(out.split("COMPILED", 1)[1].split())
    assert compiled, "the run compiled nothing: the cache was not empty, so this test shows nothing"
    assert compiled & UPDATE_KERNELS == set(), compiled


SHARES = """
import json, sys
from purepg.run import ahead
for spec in json.loads(sys.argv[1]):
    algo, ctx, state, batch, rng = ahead._build(spec)
    ahead.compile_kernels(ctx, batch, rng, ahead.AHEAD_SHARE + ahead.RUN_SHARE)
"""

TWO_RUNS = LISTEN.replace('main(["train", "--algo", sys.argv[1], "--env", sys.argv[2], "--steps", sys.argv[3], "--out", sys.argv[4]])',
                          'main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "256", "--out", sys.argv[1] + "/ppo"])\n'
                          '    main(["train", "--algo", "trpo", "--env", "CartPole-v1", "--steps", "1024", "--out", sys.argv[1] + "/trpo"])')


def test_the_two_shares_have_the_updates_signatures(tmp_path):
    """What :func:`ahead.compile_kernels` compiles for the two shares of PPO's and TRPO's updates, without
    the updates (on synthetic caches and batches), is what the runs call: runs of both on that cache
    compile none of it (their acting pass, which no share holds, they do compile)."""
    shares = {"_adam_update_numba", "_mlp_backward_numba", "_categorical_log_prob_and_grad_numba", "_gae_numba",
              "_log_softmax_numba", "_clip_terms_numba", "_minibatch_rows_numba", "_mlp_jvp_numba"}
    env_vars = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PUREPG_COMPILE_AHEAD": "0"}
    specs = [{"algo": a, "config": config_to_dict(C()), "obs_dim": 4, "discrete": True, "act": 2}
             for a, C in (("ppo", ppo.Config), ("trpo", trpo.Config))]
    subprocess.run([sys.executable, "-c", SHARES, json.dumps(specs)], text=True, env=env_vars, check=True,
                   capture_output=True)
    assert TWO_RUNS != LISTEN                                    # both runs replaced the one
    out = subprocess.run([sys.executable, "-c", TWO_RUNS, str(tmp_path / "runs")], text=True, env=env_vars,
                         check=True, capture_output=True).stdout
    compiled = set(out.split("COMPILED", 1)[1].split())
    assert "_step_flags_numba" in compiled, compiled             # the cache held only the shares' kernels
    assert compiled & shares == set(), compiled


@pytest.mark.parametrize("discrete", [True, False])
def test_both_shares_compile_for_every_algorithm(discrete):
    """:func:`ahead.compile_kernels` imitates each algorithm's arrays without error, for both kinds of
    action space (the run's share runs in the run itself: an algorithm it could not feed would have ended
    a first run, as REINFORCE's and the off-policy learner's did without a ``gae_lambda`` field)."""
    from purepg.algos import available, get_algo
    for name in available():
        algo = get_algo(name)
        spec = {"algo": algo.NAME, "config": config_to_dict(algo.Config()), "obs_dim": 3, "discrete": discrete,
                "act": 2}
        _, ctx, _, batch, rng = ahead._build(spec)
        ahead.compile_kernels(ctx, batch, rng, ahead.AHEAD_SHARE + ahead.RUN_SHARE)


def test_an_error_in_the_runs_share_does_not_end_the_run(monkeypatch):
    def broken(*args):
        raise AttributeError("no such field")

    monkeypatch.setattr(ahead, "compile_kernels", broken)
    r, w = os.pipe()
    os.write(w, b".")
    proc = _Proc(os.fdopen(r, "rb"))
    ahead.await_share(proc, type("Ctx", (), {"pol": purepg.CategoricalPolicy(4, 2), "config": ppo.Config()})())
    assert proc.stdout.closed
    os.close(w)


def test_synthetic_batch_has_a_rollouts_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    for pol, cfg in ((purepg.CategoricalPolicy(4, 3), ppo.Config(num_envs=2, num_steps=8, minibatch_size=16)),
                     (purepg.GaussianPolicy(3, 2), trpo.Config(num_envs=3, num_steps=5, vf_minibatch_size=15, normalize_obs=True))):
        b = ahead.synthetic_batch(pol, cfg, rng)
        T, E = cfg.num_steps, cfg.num_envs
        assert b.obs.shape == (T, E, pol.obs_dim) and b.obs.dtype == np.float64
        assert b.act.dtype == (np.int64 if pol.discrete else np.float64)
        assert b.terminated.dtype == b.truncated.dtype == np.bool_
        assert (b.obs_raw is not None) == cfg.normalize_obs
        assert len(b.episode_returns) == b.terminated.sum()


def test_no_second_process_where_it_would_not_help(monkeypatch):
    from gymnasium import spaces
    box, two = spaces.Box(-1.0, 1.0, (4,)), spaces.Discrete(2)
    monkeypatch.setattr(ahead, "cold", lambda *config: False)
    assert ahead.start(ppo, ppo.Config(), box, two) is None                    # the cache has the kernels
    monkeypatch.setattr(ahead, "cold", lambda *config: True)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert ahead.start(ppo, ppo.Config(), box, two) is None                    # one core: nothing to overlap
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv("PUREPG_COMPILE_AHEAD", "0")
    assert ahead.start(ppo, ppo.Config(), box, two) is None                    # switched off


def test_stop_ends_a_running_process_and_ignores_none():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ahead.stop(proc)
    assert proc.poll() is not None
    ahead.stop(None)
    ahead.stop(proc)                                                            # already ended: nothing to do



def test_the_run_ends_its_compiling_process_however_the_run_ends(tmp_path, monkeypatch):
    """``runner.train`` stops the process :func:`ahead.start` gave it when it returns and when it raises
    (a KeyboardInterrupt here: Ctrl-C before the first checkpoint)."""
    from purepg.run import runner

    procs = []

    def start(*args, **kwargs):
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return procs[-1]

    monkeypatch.setattr(ahead, "start", start)
    runner.train(ppo, "CartPole-v1", ppo.Config(), out_dir=tmp_path / "a", total_steps=256)
    assert len(procs) == 1 and procs[0].poll() is not None

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_loop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.train(ppo, "CartPole-v1", ppo.Config(), out_dir=tmp_path / "b", total_steps=256)
    assert len(procs) == 2 and procs[1].poll() is not None


def test_the_kernels_for_later_runs_wait_for_the_runs_first_row(tmp_path):
    """:func:`ahead.wait_for_a_row` returns once the progress file's size changed (the first row), at once
    without a file to watch, and after its timeout at the latest; it says to stop when the run has ended."""
    import threading
    import time

    path = tmp_path / "progress.csv"
    t0 = time.monotonic()
    ahead.wait_for_a_row(None, -1)
    assert time.monotonic() - t0 < 0.5
    threading.Timer(0.4, lambda: path.write_text("iteration,step\n1,256\n")).start()
    t0 = time.monotonic()
    ahead.wait_for_a_row(str(path), ahead._size(str(path)), timeout=30, poll=0.02)
    assert 0.3 < time.monotonic() - t0 < 10 and path.exists()
    t0 = time.monotonic()
    ahead.wait_for_a_row(str(path), ahead._size(str(path)), timeout=0.3, poll=0.02)     # no new row: the timeout
    assert 0.25 < time.monotonic() - t0 < 5
    assert ahead.wait_for_a_row(None, -1, parent=os.getppid()) is True
    assert ahead.wait_for_a_row(str(path), ahead._size(str(path)), parent=-1) is False   # the run is gone: stop


def test_a_warm_cache_without_the_fused_kernels_still_compiles_them(monkeypatch):
    """A first run that ended before its compiling process reached :mod:`purepg.kernels.heads` leaves them
    to the next run: ``cold`` holds for a tanh run while they are missing, not for a relu run."""
    from purepg.kernels import blas, heads
    monkeypatch.setattr(ahead, "_update_cold", lambda: False)                   # the update's kernels: cached
    monkeypatch.setattr(heads, "ready", lambda: False)
    assert ahead.cold() is False                                                # no run given: the update alone
    assert ahead.cold(ppo.Config()) is blas.AVAILABLE
    assert ahead.cold(ppo.Config(activation="relu")) is False
    monkeypatch.setattr(heads, "ready", lambda: True)
    assert ahead.cold(ppo.Config()) is False


def test_a_first_run_waits_for_the_share_of_its_compiling_process(tmp_path):
    """A cold run with its compiling process: the run compiles none of :data:`ahead.AHEAD_SHARE`'s kernels
    (it waits for them, :func:`ahead.await_share`) and writes the same rows and checkpoint as a run without
    that process on the cache it left."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the compiling process runs only where there are two cores")
    env_vars = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env_vars.pop("PUREPG_COMPILE_AHEAD", None)
    out = subprocess.run([sys.executable, "-c", LISTEN, "ppo", "CartPole-v1", "512", str(tmp_path / "a")],
                         text=True, env=env_vars, check=True, capture_output=True).stdout
    compiled = set(out.split("COMPILED", 1)[1].split())
    assert "_gae_numba" in compiled, compiled                    # the run's own share: it compiled at all
    assert compiled & {"_minibatch_rows_numba", "_mlp_backward_numba"} == set(), compiled
    env_vars["PUREPG_COMPILE_AHEAD"] = "0"
    subprocess.run([sys.executable, "-c", LISTEN, "ppo", "CartPole-v1", "512", str(tmp_path / "b")],
                   text=True, env=env_vars, check=True, capture_output=True)
    rows = [(tmp_path / r / "progress.csv").read_text().splitlines() for r in "ab"]
    header = rows[0][0].split(",")
    timed = [header.index("time_s"), header.index("sps")]
    strip = [[[c for i, c in enumerate(line.split(",")) if i not in timed] for line in r[1:]] for r in rows]
    assert strip[0] == strip[1] and len(strip[0]) == 2
    a, b = (np.load(tmp_path / r / "checkpoint.npz") for r in "ab")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        if a[k].dtype.kind != "U" and k != "loop/time_s":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class _Proc:
    """A stand-in for the compiling process: ``stdout`` a pipe its byte comes through (or None)."""

    def __init__(self, stdout, alive=True):
        self.stdout, self.alive = stdout, alive

    def poll(self):
        return None if self.alive else 0


def test_await_share_waits_for_the_byte_once(monkeypatch):
    import threading
    import time

    calls = []
    monkeypatch.setattr(ahead, "compile_kernels", lambda ctx, batch, rng, names: calls.append(names))
    ctx = type("Ctx", (), {"pol": purepg.CategoricalPolicy(4, 2), "config": ppo.Config()})()
    ahead.await_share(None, ctx)
    ahead.await_share(_Proc(None), ctx)                                         # no share: only later runs'
    assert calls == []
    r, w = os.pipe()
    proc = _Proc(os.fdopen(r, "rb"))
    threading.Timer(0.4, lambda: os.write(w, b".")).start()
    t0 = time.monotonic()
    ahead.await_share(proc, ctx)
    assert 0.3 < time.monotonic() - t0 < 10 and calls == [ahead.RUN_SHARE] and proc.stdout.closed
    t0 = time.monotonic()
    ahead.await_share(proc, ctx)                                                # after the first call: at once
    assert time.monotonic() - t0 < 0.1 and len(calls) == 1
    os.close(w)
    r, w = os.pipe()
    t0 = time.monotonic()
    ahead.await_share(_Proc(os.fdopen(r, "rb"), alive=False), ctx)              # the process has ended
    ahead.await_share(_Proc(os.fdopen(os.pipe()[0], "rb")), ctx, timeout=0.3)   # silent: the timeout
    assert time.monotonic() - t0 < 5
    os.close(w)


def test_compile_now_does_the_first_runs_work_in_this_process(monkeypatch):
    """``compile_now`` (benchmarks, scripts: runs without a compiling process) compiles the update's share,
    runs the update once and compiles the kernels for later runs, here and at once (no progress row to wait
    for, no parent to watch)."""
    done = []
    monkeypatch.setattr(ahead, "compile_kernels", lambda ctx, batch, rng, names: done.append(tuple(names)))
    monkeypatch.setattr(ahead, "fused_for_later_runs", lambda pol, vf, batch, rng: done.append("later runs"))
    monkeypatch.setattr(ppo, "update", lambda ctx, state, batch, rng, progress: done.append("update"))
    ahead.compile_now(ppo, ppo.Config(num_envs=2, num_steps=8, minibatch_size=16), "CartPole-v1")
    assert done == [ahead.AHEAD_SHARE, "update", "later runs"]


def test_seeds_and_local_sweeps_prepare_the_kernels_once_where_the_cache_lacks_them(monkeypatch, tmp_path):
    from purepg.run import seeds, sweep
    calls = []
    monkeypatch.setattr(ahead, "cold", lambda config=None: True)
    monkeypatch.setattr(ahead, "compile_now",
                        lambda algo, config, env_id, env_module=None: calls.append((algo.NAME, env_id, env_module)))
    monkeypatch.setattr(seeds, "_run_all", lambda tasks, jobs, verbose: {t[3]: RuntimeError("stop") for t in tasks})
    with pytest.raises(seeds.SeedRunError):
        seeds.run_seeds("ppo", "CartPole-v1", ppo.Config(), "0-1", out_root=tmp_path / "s", total_steps=512,
                        verbose=False)
    assert calls == [("ppo", "CartPole-v1", None)]
    calls.clear()
    ahead.prepare(ppo, ppo.Config(), "Mine-v0", "my_pkg.envs")
    assert calls == [("ppo", "Mine-v0", "my_pkg.envs")]
    tasks = [{"algo": a, "env_id": "CartPole-v1", "config": {}, "state": st} for a, st in
             (("ppo", "new"), ("ppo", "new"), ("trpo", "resume"), ("trpo", "new"))]
    calls.clear()
    sweep._prepare(tasks)
    assert calls == [("ppo", "CartPole-v1", None), ("trpo", "CartPole-v1", None)]
    monkeypatch.setattr(ahead, "compile_now", lambda *a: 1 / 0)           # an error there costs only time
    ahead.prepare(ppo, ppo.Config(), "CartPole-v1")


def test_compile_now_makes_the_env_as_a_run_does(monkeypatch):
    """The environment comes from :func:`purepg.env.envs.make_env`: its module imported first, its spaces
    sizing the networks the compilation builds."""
    from purepg.env import envs
    made, specs = [], []
    monkeypatch.setattr(envs, "make_env", lambda env_id, env_module=None: made.append((env_id, env_module))
                        or envs.gymnasium.make("Pendulum-v1"))
    monkeypatch.setattr(ahead, "compile_update", specs.append)
    ahead.compile_now(trpo, trpo.Config(), "Mine-v0", "my_pkg.envs")
    assert made == [("Mine-v0", "my_pkg.envs")]
    assert (specs[0]["obs_dim"], specs[0]["discrete"], specs[0]["act"], specs[0]["update"]) == (3, False, 1, True)
