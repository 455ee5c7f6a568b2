"""The purepg command: every bad input is one line on stderr with exit status 2; SIGINT and resume."""
import csv
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import time

import pytest

from helpers import cli_process
from purepg.cli import commands as cli
from purepg.run import runner
from purepg.algos import ALGOS, get_algo, ppo
from purepg.algos.fields import show

TINY = ["--num-envs", "2", "--num-steps", "16", "--epochs", "2", "--minibatch-size", "16", "--hidden", "8",
        "--vf-hidden", "8"]
NAN_ENV = '''
import gymnasium, numpy as np
from gymnasium import spaces

class NanEnv(gymnasium.Env):
    """Rewards 1 until global step 40 of this copy, then NaN."""
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = spaces.Discrete(2)
    k = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, a):
        self.k += 1
        return np.full(2, 0.01 * self.k), (float("nan") if self.k >= 40 else 1.0), False, self.k % 10 == 0, {}

gymnasium.register("NanEnv-v0", entry_point=NanEnv)
'''


def _popen(args, cwd, extra_path=None):
    return cli_process.popen(args, cwd, extra_path)


def _run(args, cwd, extra_path=None, timeout=120):
    return cli_process.run(args, cwd, timeout, extra_path)


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, h in enumerate(rows[0]) if h not in runner.WALL_COLUMNS]
    return [[r[i] for i in keep] for r in rows]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished tiny PPO run (4 iterations) to evaluate, corrupt and collide with."""
    d = tmp_path_factory.mktemp("cli")
    rc, out, err = _run(["train", *TINY, "--steps", "128", "--out", str(d / "run"), "--quiet"], cwd=d)
    assert rc == 0, err
    return d / "run"


# ----------------------------------------------------------------------------- bad input ----
def _bad_inputs(tmp_path, small_run, corrupt):
    """``(argv, pattern of the one error line)`` for each bad input of the test below."""
    return [
        (["train", "--algo", "ppx"], r"algo: expected one of reinforce, ppo, .*got 'ppx'\. Fix: did you mean ppo"),
        (["train", "--env", "CartPol-v1"], r"unknown id 'CartPol-v1'.*did you mean 'CartPole-v1'"),
        (["train", "--lrr", "3"], r"unknown option or config field '--lrr' for algorithm ppo\. Did you mean --lr"),
        (["train", "--algo", "reinforce", "--lam", "0.9"], r"unknown option or config field '--lam' for algorithm "
                                                           r"reinforce"),
        (["train", "--lr", "-1"], r"invalid configuration for ppo: lr: expected a finite number > 0, got -1\.0"),
        (["train", "--gamma", "1.5"], r"gamma: expected a finite number in \[0, 1\], got 1\.5"),
        (["train", "--lr", "abc"], r"argument --lr: expected a number, got 'abc'"),
        (["train", "--minibatch-size", "100"], r"minibatch_size: expected a divisor of the batch .* = 256, got 100"),
        (["train", "--clip", "0"], r"clip: expected a finite number > 0, got 0\.0"),
        (["train", "--env", "Blackjack-v1"], r"observation space of Blackjack-v1: expected a flat 1-D Box"),
        (["train", "--steps", "10"], r"total_steps: expected an integer >= num_envs \* num_steps = 256"),
        (["train", *TINY, "--steps", "64", "--out", str(small_run)], r"exists and is not empty.*--force"),
        (["train", *TINY, "--env", "NanEnv-v0", "--steps", "1024", "--checkpoint-every", "1",
          "--out", str(tmp_path / "nan")], r"iteration 2: reward: expected finite values, got \[nan\] from env 0"),
        (["resume", str(corrupt)], r"checkpoint\.npz: cannot be read .* truncated or corrupt"),
        (["eval", str(corrupt)], r"checkpoint\.npz: cannot be read .* truncated or corrupt"),
        (["eval", str(tmp_path / "nowhere")], r"config\.json is missing"),
        (["eval", str(small_run), "--episodes", "0"], r"--episodes: expected an integer >= 1, got 0"),
        (["frobnicate"], r"invalid choice: 'frobnicate'"),
        (["train", "--threads", "3"], r"^purepg train: error: --threads: expected 1 or 2 \(threads of one run\), got 3\. "
                                      r"Fix: pass 1"),
        (["resume", str(small_run), "--threads", "0"], r"^purepg resume: error: --threads: expected 1 or 2 .*got 0"),
        (["sweep", "--threads", "4", "--out", str(tmp_path / "sw")], r"^purepg sweep: error: --threads: expected 1 or 2"),
    ]


def test_each_bad_input_is_one_line_and_exit_2(tmp_path, small_run):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(small_run, corrupt)
    data = (corrupt / "checkpoint.npz").read_bytes()
    (corrupt / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "sitecustomize.py").write_text(NAN_ENV)       # registers NanEnv-v0 in the subprocesses
    cases = _bad_inputs(tmp_path, small_run, corrupt)
    procs = [(args, pattern, _popen(args, tmp_path, extra_path=tmp_path)) for args, pattern in cases]
    for args, pattern, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, (args, err)
        assert "Traceback" not in err, (args, err)
        last = err.strip().splitlines()[-1]
        assert re.search(pattern, last), (args, err)
        assert last.startswith("purepg"), (args, err)
        if "--quiet" not in args and "nan" not in str(args):
            assert len(err.strip().splitlines()) == 1, (args, err)   # nothing else (no progress line yet)
    from purepg.run import checkpoint
    tree, meta = checkpoint.load(str(tmp_path / "nan" / "checkpoint.npz"))   # the last good one is intact
    assert meta["iteration"] == 2


# ----------------------------------------------------------------------------- commands -----
def test_train_without_arguments_is_ppo_on_cartpole(monkeypatch, capsys):
    seen = {}

    def fake_train(algo, env_id, config, **kw):
        seen.update(algo=algo, env_id=env_id, config=config, **kw)
        return {"algo": algo.NAME, "env_id": env_id, "seed": kw["seed"], "steps": 0, "episodes": 0,
                "last_row": {}, "out_dir": kw["out_dir"]}

    monkeypatch.setattr(runner, "train", fake_train)
    assert cli.main([]) == 0
    assert seen["algo"] is ppo and seen["env_id"] == "CartPole-v1" and seen["total_steps"] == 100_000
    assert seen["config"] == ppo.Config() and seen["seed"] == 0 and seen["force"] is False
    assert seen["out_dir"] == os.path.join("runs", "ppo-CartPole-v1-s0")
    assert "purepg eval runs" in capsys.readouterr().out


def _configured(monkeypatch, argv):
    seen = {}
    monkeypatch.setattr(runner, "train", lambda algo, env, config, **kw: seen.setdefault("c", config) and
                        {"algo": algo.NAME, "env_id": env, "seed": 0, "steps": 0, "episodes": 0, "last_row": {},
                         "out_dir": "x"})
    assert cli.main(["train", *argv]) == 0
    return seen["c"]


@pytest.mark.parametrize("name", [n for n in ALGOS])
def test_every_config_field_is_settable(monkeypatch, capsys, name):
    """Every field of every registered algorithm's Config round-trips through its --field option."""
    try:
        algo = get_algo(name)
    except (ImportError, ValueError):
        pytest.skip(f"{name} is not available yet")
    argv = ["--algo", name]
    for f in dataclasses.fields(algo.Config):
        text = "none" if f.default is None else show(f.default)
        argv += [f"--{f.name}", text]
    assert _configured(monkeypatch, argv) == algo.Config()


def test_field_values_are_parsed(monkeypatch, capsys):
    c = _configured(monkeypatch, ["--hidden", "32,16", "--vf-hidden", "", "--normalize-obs", "true", "--kl-stop",
                                  "0.02", "--vf_clip", "none", "--num-envs", "16", "--lr", "3e-4", "--epochs", "1e1"])
    assert c == ppo.Config(hidden=(32, 16), vf_hidden=(), normalize_obs=True, kl_stop=0.02, num_envs=16,
                           lr=3e-4, epochs=10)


def test_algos_lists_fields_defaults_and_meaning(capsys):
    assert cli.main(["algos"]) == 0
    out = capsys.readouterr().out
    for name in ALGOS:
        assert re.search(rf"^{re.escape(name)}: ", out, re.M)
    block = out.split("\nppo: ")[1].split("\n\n")[0]
    for f in dataclasses.fields(ppo.Config):
        assert re.search(rf"--{f.name}\s+{re.escape(show(f.default))}\s+\S", block), f.name
    assert "clip range of the ratio" in block


def test_train_then_eval_through_the_command(small_run):
    rc, out, err = _run(["eval", str(small_run), "--episodes", "3", "--seed", "7"], cwd=small_run.parent)
    assert rc == 0, err
    assert re.search(r"return \d+\.\d\d \+- \d+\.\d\d \(mean \+- std over 3 episodes, deterministic policy, "
                     r"reset seeds 7\.\.9", out)
    assert (small_run / "config.json").exists() and (small_run / "progress.csv").exists()


def test_evaluate_is_reproducible(small_run):
    a = cli.evaluate(str(small_run), episodes=2, seed=3, stochastic=True)
    b = cli.evaluate(str(small_run), episodes=2, seed=3, stochastic=True)
    assert a.shape == (2,) and (a == b).all() and (a > 0).all()


# ----------------------------------------------------------------------------- SIGINT -------
def test_sigint_saves_and_resume_matches_an_uninterrupted_run(tmp_path):
    args = ["train", *TINY, "--seed", "3", "--steps", "9600", "--checkpoint-every", "50"]
    full = _popen([*args, "--out", str(tmp_path / "full"), "--quiet"], tmp_path)
    part = _popen([*args, "--out", str(tmp_path / "part")], tmp_path)
    progress = tmp_path / "part" / "progress.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (progress.exists() and len(progress.read_text().splitlines()) >= 4):
        time.sleep(0.02)
    part.send_signal(signal.SIGINT)
    out, err = part.communicate(timeout=60)
    assert part.returncode == 130, err
    assert "Traceback" not in err
    assert re.search(rf"interrupted by SIGINT at iteration (\d+); checkpoint saved with \1 iterations and \d+ steps\. "
                     rf"Resume with: purepg resume "
                     rf"{re.escape(str(tmp_path / 'part'))}", err.strip().splitlines()[-1])
    n = int(re.search(r"interrupted by SIGINT at iteration (\d+)", err).group(1))
    assert 3 <= n < 300 and (tmp_path / "part" / "checkpoint.npz").exists()
    rc, out, err = _run(["resume", str(tmp_path / "part"), "--quiet"], tmp_path)
    assert rc == 0, err
    assert full.wait(timeout=120) == 0
    assert _rows(tmp_path / "full" / "progress.csv") == _rows(progress)
    assert len(_rows(progress)) == 301


def test_python_dash_m_purepg(tmp_path):
    rc, out, err = _run(["algos", "ppo-kl"], tmp_path)
    assert rc == 0 and out.startswith("ppo-kl: PPO with an adaptive KL penalty") and "--beta_init" in out


# ------------------------------------------------------------------------ custom envs -------
README = (cli_process.ROOT / "README.md").read_text()
RUN_LINES = '''
import shlex, sys
from purepg.cli import main
for line in sys.argv[1:]:
    status = main(shlex.split(line)[1:])
    print(f"status {status}", flush=True)
'''


def test_the_readme_custom_environment_example_runs(tmp_path, monkeypatch):
    """The module and commands of the README; eval and resume in a new process need no extra flag."""
    (module,) = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "gymnasium.register" in b]
    (commands,) = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    (tmp_path / "my_envs.py").write_text(module)
    lines = [ln.split("#")[0].strip() for ln in commands.strip().splitlines()]
    trains = [ln for ln in lines if ln.startswith("purepg train")]
    assert len(trains) == 2 and "my_envs:Corridor-v0" in trains[0] and "--env-module my_envs" in trains[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for line in trains:
        assert cli.main(shlex.split(line)[1:]) == 0
    metas = [json.loads((tmp_path / "runs" / d / "config.json").read_text()) for d in ("corridor", "corridor-2")]
    assert [(m["env_id"], m["env_module"]) for m in metas] == [("my_envs:Corridor-v0", None),
                                                               ("Corridor-v0", "my_envs")]
    rest = [ln for ln in lines if ln not in trains]
    rc, out, err = cli_process.run(rest, tmp_path, extra_path=tmp_path, code=RUN_LINES)
    assert rc == 0 and re.findall(r"^status (\d+)$", out, flags=re.M) == ["0", "0"], (out, err)
    assert re.search(r"runs/corridor: return -?\d+\.\d\d \+- ", out) and "8192 steps" in out, out


def test_a_custom_environment_that_cannot_be_imported_is_one_line(tmp_path):
    for args, pattern in ((["--env", "no_such_mod:X-v0"], r"env: expected an importable module, got 'no_such_mod', which cannot be imported "
                                                           r"\(ModuleNotFoundError: .*\)\. Fix: make it importable"),
                          (["--env", "X-v0", "--env-module", "no_such_mod"], r"env_module: expected an importable module, got 'no_such_mod'")):
        rc, err = _in_process(["train", *args, "--out", str(tmp_path / "r")])
        assert rc == 2 and len(err.strip().splitlines()) == 1 and re.search(pattern, err), err
        assert not (tmp_path / "r").exists()


def _in_process(args):
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(args)
    return rc, err.getvalue()
