"""The conventions a user's implementation follows, by profile name, as the checks need them.

A profile fixes the choices on which implementations differ while computing the same mathematics:
how advantages are standardised, the offset of global-norm clipping, Adam's epsilon, and the form and
scale of the value loss. ``purepg`` is purepg's default; ``sb3`` is Stable-Baselines3 / sb3-contrib;
``cleanrl`` is CleanRL's single-file PPO. A dict of option values may be passed instead of a name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Conventions:
    """Option values a check reads (see the module docstring)."""

    advantage_ddof: int = 0            # standard deviation of the minibatch's advantages: ddof 0 or 1
    advantage_eps: float = 0.0         # (A - mean) / (std + eps)
    normalize_single: bool = True      # standardise a minibatch of one sample (SB3 skips it)
    clip_grad_offset: float = 0.0      # g * min(1, c / (||g|| + offset)); torch clip_grad_norm_ uses 1e-6
    adam_eps: float = 1e-5             # purepg's PPO default (as SB3's policy optimiser)
    value_clip: str = "max"            # "max": max(unclipped, clipped) squared error; "clipped": regress the clipped value
    value_loss_scale: float = 0.5      # 1/2 mean squared error (purepg, CleanRL) or the mean (SB3's F.mse_loss)


PROFILES = {
    "purepg": Conventions(),
    # stable_baselines3/ppo/ppo.py: advantages (A - mean) / (A.std() + 1e-8), torch's std is ddof 1, skipped
    # when the minibatch has one sample; clip_grad_norm_; Adam eps 1e-5 (common/policies.py); value loss
    # F.mse_loss of the clipped prediction when clip_range_vf is set.
    "sb3": Conventions(advantage_ddof=1, advantage_eps=1e-8, normalize_single=False, clip_grad_offset=1e-6,
                       adam_eps=1e-5, value_clip="clipped", value_loss_scale=1.0),
    # cleanrl/ppo.py: (A - mean) / (A.std() + 1e-8), nn.utils.clip_grad_norm_, Adam eps 1e-5,
    # 0.5 * mean(max(unclipped, clipped)) for the clipped value loss.
    "cleanrl": Conventions(advantage_ddof=1, advantage_eps=1e-8, clip_grad_offset=1e-6, adam_eps=1e-5),
}


def conventions(profile) -> Conventions:
    """The :class:`Conventions` of a profile name, a :class:`Conventions`, or a dict of overrides of ``purepg``."""
    if isinstance(profile, Conventions):
        return profile
    if isinstance(profile, dict):
        try:
            return replace(PROFILES["purepg"], **profile)
        except TypeError as e:
            raise ValueError(f"profile: {e}. Fix: use option names of purepg.testing.profiles.Conventions") from None
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {sorted(PROFILES)}, got {profile!r}. "
                         f"Fix: pass one of those names or a dict of option values")
    return PROFILES[profile]
