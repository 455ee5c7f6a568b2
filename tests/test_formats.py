"""purepg.run.formats: run directories of the first format (old field, state and column names) are read,
renamed with one line on stderr, and a resumed one continues exactly as an uninterrupted run."""
import csv
import json

import numpy as np
import pytest

from purepg.algos import ppo, ppo_kl, trpo_lagrangian
from purepg.run import checkpoint, formats, rundir, runner

OLD = "purepg-run-1"


def test_upgrade_renames_every_old_field_at_once(capsys):
    """ppo-kl's old ``target_kl`` (the early stop) becomes ``kl_stop`` while its old ``d_targ`` becomes
    ``target_kl``: the renames apply to the names as written, not one after the other."""
    old = {"lam": 0.9, "normalize_adv": False, "target_kl": 0.05, "clip_vf": 0.2, "d_targ": 0.02, "lr": 3e-4}
    meta = {"run_format": OLD, "algo": "ppo-kl", "config": old}
    new = formats.upgrade(meta, "runs/x")
    assert new["run_format"] == formats.RUN_FORMAT and meta["config"] is old        # the input is not changed
    assert new["config"] == {"gae_lambda": 0.9, "normalize_advantage": False, "kl_stop": 0.05, "vf_clip": 0.2,
                             "target_kl": 0.02, "lr": 3e-4}
    assert ppo_kl.Config(**new["config"]) == ppo_kl.Config(gae_lambda=0.9, normalize_advantage=False, kl_stop=0.05,
                                                           vf_clip=0.2, target_kl=0.02, lr=3e-4)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"purepg: runs/x: config.json of run_format {OLD} read as {formats.RUN_FORMAT}; renamed fields: "
                   "lam -> gae_lambda, normalize_adv -> normalize_advantage, target_kl -> kl_stop, "
                   "clip_vf -> vf_clip, d_targ -> target_kl"]


def test_current_format_and_unrenamed_fields_print_nothing(capsys):
    meta = {"run_format": formats.RUN_FORMAT, "algo": "ppo", "config": {"gae_lambda": 0.9}}
    assert formats.upgrade(meta, "d") is meta
    assert formats.upgrade({"run_format": OLD, "algo": "reinforce", "config": {"lr": 1.0}}, "d")["config"] == {"lr": 1.0}
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match=r"run_format of d/config.json: expected one of 'purepg-run-1', 'purepg-run-2', got 'purepg-run-9' "):
        formats.upgrade({"run_format": "purepg-run-9", "algo": "ppo", "config": {}}, "d")


def test_an_old_name_passed_today_points_at_the_new_one():
    with pytest.raises(ValueError, match=r"config field 'lam': expected a field of algorithm ppo, got an unknown name\. Fix: did you mean gae_lambda\? "):
        runner.config_from_dict(ppo.Config, {"lam": 0.9}, algo="ppo")


def test_an_old_option_on_the_command_line_points_at_the_new_one(capsys):
    from purepg.cli import commands as cli
    assert cli.main(["train", "--algo", "ppo-kl", "--d-targ", "0.02"]) == 2
    assert "unknown option or config field '--d-targ' for algorithm ppo-kl. Did you mean --target_kl?" in \
        capsys.readouterr().err


def _downgrade(run_dir):
    """Rewrite a run directory as the first format wrote it: old config names, state key and columns."""
    meta = json.loads((run_dir / "config.json").read_text())
    back = {new: old for old, new in formats.RENAMED_FIELDS["trpo-lagrangian"].items()}
    meta["run_format"], meta["config"] = OLD, {back.get(k, k): v for k, v in meta["config"].items()}
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    lines = (run_dir / "progress.csv").read_text().split("\n", 1)
    lines[0] = lines[0].replace("nu_next", "lam_next").replace("nu,", "lam,")
    (run_dir / "progress.csv").write_text("\n".join(lines))
    path = str(run_dir / "checkpoint.npz")
    tree, ck = checkpoint.load(path)
    tree["algo"]["lam"] = tree["algo"].pop("nu")
    checkpoint.save(path, tree, ck)
    return meta


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in runner.WALL_COLUMNS} for r in csv.DictReader(f)]


def test_an_old_run_resumes_exactly_and_is_rewritten_in_the_new_format(tmp_path, capsys):
    cfg = trpo_lagrangian.Config(num_steps=32, hidden=(8,), vf_hidden=(8,), vf_minibatch_size=32, nu_init=0.5,
                                 epochs=3)
    full, part = tmp_path / "full", tmp_path / "part"
    runner.train(trpo_lagrangian, "CartPole-v1", cfg, seed=4, out_dir=str(full), total_steps=384, verbose=False)
    runner.train(trpo_lagrangian, "CartPole-v1", cfg, seed=4, out_dir=str(part), total_steps=192, verbose=False)
    old = _downgrade(part)
    assert {"lam_init", "pi_steps"} <= old["config"].keys() and "lam" in (part / "progress.csv").read_text()
    capsys.readouterr()
    runner.resume(str(part), total_steps=384, verbose=False)
    assert "renamed fields: lam_init -> nu_init, lam_lr -> nu_lr, pi_lr -> lr, pi_steps -> epochs" in capsys.readouterr().err
    assert _rows(full / "progress.csv") == _rows(part / "progress.csv") and len(_rows(full / "progress.csv")) == 6
    a, b = (checkpoint.load(str(p / "checkpoint.npz"))[0]["algo"] for p in (full, part))
    assert a.keys() == b.keys() and a["nu"] == b["nu"]
    np.testing.assert_array_equal(a["theta"], b["theta"])
    meta = json.loads((part / "config.json").read_text())
    assert meta["run_format"] == formats.RUN_FORMAT and meta["config"] == runner.config_to_dict(cfg)
    with pytest.raises(rundir.RunDirError, match="the run is finished"):   # read as a current-format run
        runner.resume(str(part), total_steps=384, verbose=False)
    assert "renamed" not in capsys.readouterr().err
