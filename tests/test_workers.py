"""A run on two threads: the same bits as on one, the parts on the worker thread, no thread left behind."""
import threading

import numpy as np
import pytest

from helpers.algo_runs import PPO_FAST, SMALL, progress_rows
from purepg.algos import critic, get_algo, ppo
from purepg.run import checkpoint, runner, workers

# Every algorithm whose update hands a part to the worker, in a configuration of a few fast iterations
# with several critic (or PPO) minibatches per epoch, so the minibatch permutations are drawn from rng.
RUNS = {"trpo": dict(SMALL, cg_x0="randn", vf_minibatch_size=32), "npg": dict(SMALL, vf_minibatch_size=32),
        "trpo-lagrangian": dict(SMALL, vf_minibatch_size=32, epochs=2),
        "offpolicy": dict(SMALL, vf_minibatch_size=32, buffer_batches=2),
        "ppo": dict(PPO_FAST, vf_clip=0.2, ent_coef=0.01), "ppo-kl": dict(PPO_FAST)}


def _train(tmp_path, name, threads, steps=512, **kw):
    algo = get_algo(name)
    out = tmp_path / f"{name}-{threads}"
    runner.train(algo, "CartPole-v1", algo.Config(**RUNS[name]), seed=3, out_dir=str(out), total_steps=steps,
                 verbose=False, threads=threads, **kw)
    tree, meta = checkpoint.load(str(out / "checkpoint.npz"))
    flat = {k: v for k, v in checkpoint.flatten(tree).items() if k != "loop/time_s"}      # wall time aside
    return progress_rows(out / "progress.csv"), {**flat, "rng": np.array(meta["rng_state"])}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_two_threads_give_the_bits_of_one(tmp_path, name):
    before = threading.active_count()
    rows1, tree1 = _train(tmp_path, name, 1)
    rows2, tree2 = _train(tmp_path, name, 2)
    assert len(rows1) > 3 and rows1 == rows2                       # every numeric column, as text
    assert tree1.keys() == tree2.keys()
    for k in tree1:
        assert np.array_equal(tree1[k], tree2[k]), k              # parameters, Adam moments, rng state, ...
    assert threading.active_count() == before                    # the worker ended with the run


def _spy(monkeypatch, module, name, threads_seen, fail_at=None):
    """Wrap ``module.name`` to record the thread it runs on (and raise on call number ``fail_at``)."""
    real = getattr(module, name)

    def spy(*args):
        threads_seen.append(threading.current_thread().name)
        if len(threads_seen) == fail_at:
            raise RuntimeError("part failed on purpose")
        return real(*args)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.parametrize("name, module, part", [("trpo", critic, "fit_value"), ("ppo", ppo, "value_part")])
def test_the_independent_part_runs_on_the_worker_thread(tmp_path, monkeypatch, name, module, part):
    seen = []
    _spy(monkeypatch, module, part, seen)
    _train(tmp_path, name, 2, steps=256)
    assert seen and all(s.startswith("purepg-worker") for s in seen)
    seen.clear()
    _train(tmp_path, name, 1, steps=256)
    assert seen and all(s == threading.main_thread().name for s in seen)


def test_an_error_on_the_worker_reaches_the_run_and_ends_the_thread(tmp_path, monkeypatch):
    before, seen = threading.active_count(), []
    _spy(monkeypatch, critic, "fit_value", seen, fail_at=3)
    with pytest.raises(RuntimeError, match="part failed on purpose"):
        _train(tmp_path, "trpo", 2, checkpoint_every=1)
    assert threading.active_count() == before
    assert checkpoint.load(str(tmp_path / "trpo-2" / "checkpoint.npz"))[1]["iteration"] == 2   # the last good one


def test_resume_on_two_threads_continues_a_run_of_one(tmp_path):
    rows, _ = _train(tmp_path, "trpo", 1, steps=512)
    part = tmp_path / "part"
    algo = get_algo("trpo")
    runner.train(algo, "CartPole-v1", algo.Config(**RUNS["trpo"]), seed=3, out_dir=str(part), total_steps=256,
                 verbose=False)
    runner.resume(str(part), total_steps=512, verbose=False, threads=2)
    assert progress_rows(part / "progress.csv") == rows


@pytest.mark.parametrize("bad", [0, 3, 2.0, "2", True, None])
def test_threads_other_than_one_or_two_are_refused_before_anything_is_written(tmp_path, bad):
    with pytest.raises(ValueError, match=r"^threads: expected 1 or 2 \(threads of one run\), got .*\. Fix: pass 1"):
        runner.train(get_algo("ppo"), "CartPole-v1", ppo.Config(**PPO_FAST), out_dir=str(tmp_path / "r"),
                     total_steps=64, threads=bad)
    assert not (tmp_path / "r").exists()


def test_serial_defers_a_part_to_its_result_and_computes_it_once():
    calls = []
    pending = workers.SERIAL.submit(lambda x: calls.append(x) or x + 1, 1)
    assert calls == []
    assert pending.result() == pending.result() == 2 and calls == [1]
