"""Per-environment hyperparameters and step budgets of purepg's benchmark report (``bench/run_all.py``).

Anchors: rl-baselines3-zoo ``hyperparams/ppo.yml`` and ``hyperparams/trpo.yml`` (the tuned entries
for CartPole-v1, Acrobot-v1, Pendulum-v1 and MountainCarContinuous-v0); where an entry is silent,
the library default of Stable-Baselines3 ``PPO`` / sb3-contrib ``TRPO`` (what rl-zoo itself runs).
The presets already written for the other benchmarks are imported, not repeated: Pendulum PPO from
``bench/learn.py`` (``PENDULUM``), Acrobot and Pendulum TRPO from ``bench/learn_trust_region.py``
(``PRESETS``, ``SB3_DEFAULTS``). CartPole-v1 uses each algorithm's defaults, which are rl-zoo's.

Families. rl-zoo has entries for PPO and TRPO only. The other algorithms take the entry and the
budget of their family, restricted to the fields their ``Config`` has:

* PPO family (first-order, Adam on a clipped or penalised surrogate): ``ppo``, ``ppo-kl`` (PPO's
  preset without the clip range), ``reinforce`` (only the environment's ``gamma`` and
  ``normalize_obs``: its batch and step size are its own, tuned on CartPole-v1);
* TRPO family (a batch of 2 x ``num_steps`` per update, one critic): ``npg`` (keeps its 32-32 policy
  and its damping, which the exact Cholesky solve needs), ``trpo``, ``trpo-lagrangian``, ``offpolicy``.

What purepg does not have, and what it uses instead (said again in the report):

* gSDE (``use_sde``, rl-zoo's Pendulum-v1 and MountainCarContinuous-v0 entries): a state-independent
  log-std;
* ``normalize: true`` (``VecNormalize``) normalises observations *and rewards* in rl-zoo. purepg has
  both (``normalize_obs``, ``normalize_reward``); the four-environment table was run before
  ``normalize_reward`` existed and uses ``normalize_obs`` only; the Hopper presets use both;
* ``ortho_init=False`` (MountainCarContinuous-v0 and Hopper-v4 PPO): purepg's ``init="torch"`` draws
  the same distribution (``torch.nn.Linear``'s default); the Hopper preset uses it, the
  four-environment table was run before it existed and initialises orthogonally;
* PPO ``batch_size`` 256 on MountainCarContinuous-v0 is larger than its 1 x 8 rollout; SB3 then
  takes the whole rollout as the one minibatch, so ``minibatch_size`` = 8 here.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import learn  # noqa: E402  (bench/learn.py: PENDULUM)
import learn_trust_region  # noqa: E402  (bench/learn_trust_region.py: PRESETS, SB3_DEFAULTS)

from purepg.algos import get_algo  # noqa: E402

ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")
ALGOS = ("reinforce", "ppo", "ppo-kl", "npg", "trpo", "trpo-lagrangian", "offpolicy")
FAMILY = {"reinforce": "ppo", "ppo": "ppo", "ppo-kl": "ppo",
          "npg": "trpo", "trpo": "trpo", "trpo-lagrangian": "trpo", "offpolicy": "trpo"}

# rl-zoo n_timesteps of each family's entry.
BUDGETS = {
    ("ppo", "CartPole-v1"): 100_000, ("ppo", "Acrobot-v1"): 1_000_000,
    ("ppo", "Pendulum-v1"): 100_000, ("ppo", "MountainCarContinuous-v0"): 20_000,
    ("trpo", "CartPole-v1"): 100_000, ("trpo", "Acrobot-v1"): 100_000,
    ("trpo", "Pendulum-v1"): 100_000, ("trpo", "MountainCarContinuous-v0"): 50_000,
}

# rl-zoo ppo.yml Acrobot-v1: 16 envs, n_steps 256, gae 0.94, gamma 0.99, 4 epochs, ent 0, normalize;
# SB3 defaults: batch_size 64, learning_rate 3e-4 and clip_range 0.2, both constant.
PPO_ACROBOT = dict(num_envs=16, num_steps=256, gamma=0.99, gae_lambda=0.94, epochs=4, minibatch_size=64, lr=3e-4,
                   lr_final=3e-4, clip=0.2, clip_final=0.2, ent_coef=0.0, normalize_obs=True)
# rl-zoo ppo.yml MountainCarContinuous-v0 (its gSDE and ortho_init=False aside, see the module doc).
PPO_MOUNTAINCAR = dict(num_envs=1, num_steps=8, minibatch_size=8, gamma=0.9999, gae_lambda=0.9, lr=7.77e-5,
                       lr_final=7.77e-5, ent_coef=0.00429, clip=0.1, clip_final=0.1, epochs=10, max_grad_norm=5.0,
                       vf_coef=0.19, log_std_init=-3.29, normalize_obs=True)
PPO = {"CartPole-v1": {}, "Acrobot-v1": PPO_ACROBOT, "Pendulum-v1": learn.PENDULUM,
       "MountainCarContinuous-v0": PPO_MOUNTAINCAR}
# rl-zoo trpo.yml MountainCarContinuous-v0: 2 envs, normalize, gSDE; sb3-contrib defaults otherwise
# (n_steps 2048 and those of SB3_DEFAULTS).
TRPO = {"CartPole-v1": {}, "Acrobot-v1": learn_trust_region.PRESETS[("trpo", "Acrobot-v1")],
        "Pendulum-v1": learn_trust_region.PRESETS[("trpo", "Pendulum-v1")],
        "MountainCarContinuous-v0": dict(learn_trust_region.SB3_DEFAULTS, num_steps=2048, normalize_obs=True)}
REINFORCE_TAKES = ("gamma", "normalize_obs")   # reinforce's batch and step size are its own

# Optional section (needs gymnasium[mujoco]): PPO and TRPO on Hopper-v5 with rl-zoo's Hopper-v4 entries.
# ppo.yml Hopper-v4 (tuned): 1 env, n_steps 512, batch 32, 5 epochs, 256-256 ReLU, log_std_init -2, normalize,
# ortho_init False.
PPO_HOPPER = dict(num_envs=1, num_steps=512, minibatch_size=32, gamma=0.999, gae_lambda=0.99, lr=9.80828e-5,
                  lr_final=9.80828e-5, ent_coef=0.00229519, clip=0.2, clip_final=0.2, epochs=5, max_grad_norm=0.7,
                  vf_coef=0.835671, log_std_init=-2.0, hidden=(256, 256), vf_hidden=(256, 256), activation="relu",
                  normalize_obs=True, normalize_reward=True, init="torch")
# trpo.yml Hopper-v4 = its pybullet defaults: 2 envs, n_steps 1024, batch 128, gae 0.95, 25 CG steps, damping 0.1,
# 20 critic passes, lr 1e-3, normalize; SB3's 64-64 tanh networks.
TRPO_HOPPER = dict(num_envs=2, num_steps=1024, vf_minibatch_size=128, gamma=0.99, gae_lambda=0.95, cg_iters=25,
                   damping=0.1, vf_epochs=20, vf_lr=1e-3, normalize_obs=True, normalize_reward=True)
HOPPER = "Hopper-v5"
PPO[HOPPER], TRPO[HOPPER] = PPO_HOPPER, TRPO_HOPPER
BUDGETS[("ppo", HOPPER)] = BUDGETS[("trpo", HOPPER)] = 1_000_000
OPTIONAL = {HOPPER: ("ppo", "trpo")}   # env -> the algorithms run on it

# What differs from the rl-zoo entry, per (family, env), for the report.
_NOT_REWARDS = "rl-zoo also normalises rewards (purepg's normalize_reward; not used in this table)"
NOTES = {
    ("ppo", "Acrobot-v1"): _NOT_REWARDS,
    ("ppo", "Pendulum-v1"): "no gSDE",
    ("ppo", "MountainCarContinuous-v0"): f"no gSDE, orthogonal init, minibatch = the 8-step rollout; {_NOT_REWARDS}",
    ("ppo", HOPPER): "Hopper-v4 entry",
    ("trpo", "Acrobot-v1"): _NOT_REWARDS,
    ("trpo", "Pendulum-v1"): "no gSDE",
    ("trpo", "MountainCarContinuous-v0"): f"no gSDE; {_NOT_REWARDS}",
    ("trpo", HOPPER): "Hopper-v4 entry",
}


def overrides(algo, env_id) -> dict:
    """The Config fields of ``algo`` on ``env_id`` that differ from its defaults (module doc)."""
    _check(algo, env_id)
    preset = (PPO if FAMILY[algo] == "ppo" else TRPO)[env_id]
    names = set(REINFORCE_TAKES) if algo == "reinforce" else set(get_algo(algo).Config.__dataclass_fields__)
    names -= {"hidden", "damping"} if algo == "npg" else set()      # npg keeps its own (module doc)
    return {k: v for k, v in preset.items() if k in names}


def config(algo, env_id):
    """The validated ``Config`` of ``algo`` on ``env_id``."""
    fields = overrides(algo, env_id)               # checks the pair first
    return get_algo(algo).Config(**fields)


def budget(algo, env_id) -> int:
    """Environment steps per seed: the rl-zoo budget of the algorithm's family on ``env_id``."""
    _check(algo, env_id)
    return BUDGETS[(FAMILY[algo], env_id)]


def source(algo, env_id) -> str:
    """Where the preset and budget of ``algo`` on ``env_id`` come from, in a few words."""
    family = FAMILY[algo]
    if algo == "reinforce":
        return "gamma, normalize_obs of rl-zoo ppo.yml; its own batch and step size; ppo budget"
    note = NOTES.get((family, env_id))
    own = "" if algo == family else f" ({family} family)"
    return f"rl-zoo {family}.yml{own}" + (f"; {note}" if note else "")


def _check(algo, env_id):
    if algo not in FAMILY:
        raise ValueError(f"algo: expected one of {', '.join(ALGOS)}, got {algo!r}. Fix: use one of those names")
    if env_id in OPTIONAL and algo not in OPTIONAL[env_id]:
        raise ValueError(f"algo: {env_id} has presets for {', '.join(OPTIONAL[env_id])} only, got {algo!r}. "
                         f"Fix: use one of those, or add a preset to bench/presets.py")
    if env_id not in ENVS and env_id not in OPTIONAL:
        raise ValueError(f"env_id: expected one of {', '.join(ENVS + tuple(OPTIONAL))}, got {env_id!r}. "
                         f"Fix: use one of those ids (or add its preset to bench/presets.py)")
