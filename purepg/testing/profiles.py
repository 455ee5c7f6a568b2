"""The conventions a user's implementation follows, read from purepg's one table of profiles
(:data:`purepg.algos.conventions.PROFILES`).

A profile fixes the choices on which implementations differ while computing the same mathematics. The
checks read five of them: the advantage standardisation (``advantage_norm``), the offset of global-norm
clipping (``grad_clip_offset``), Adam's epsilon (``adam_eps``), and the value loss's clipping
(``value_clip``) and scale (``vf_loss``). A profile name (``purepg``, ``sb3``, ``cleanrl``, ``tianshou``)
or a dict of option values on top of ``purepg`` may be given.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from purepg.algos.conventions import CONVENTIONS, PROFILES, check_value


@dataclass(frozen=True)
class Conventions:
    """Option values a check reads (names and values of :data:`purepg.algos.conventions.CONVENTIONS`)."""

    advantage_norm: str = "population"    # "population": (A - mean) / std_0; "sample_eps": / (std_1 + 1e-8)
    grad_clip_offset: float = 0.0         # g * min(1, c / (||g|| + offset))
    adam_eps: float = 1e-5                # purepg's PPO default
    value_clip: str = "max"               # "max" of the two squared errors, or the clipped "prediction" alone
    vf_loss: str = "half_mse"             # 1/2 mean (V - R)^2 (purepg's value loss, eq. 1) or "mse"


def conventions(profile) -> Conventions:
    """The :class:`Conventions` of a profile name, a :class:`Conventions`, or a dict of option values."""
    if isinstance(profile, Conventions):
        return profile
    if isinstance(profile, dict):
        known = {f.name for f in fields(Conventions)}
        unknown = sorted(set(profile) - known)
        if unknown:
            raise ValueError(f"profile: expected options among {sorted(known)}, got {unknown}. "
                             f"Fix: use those names (purepg algos --conventions purepg lists their values)")
        for k, v in profile.items():
            if k in CONVENTIONS:
                check_value(k, v)
        return Conventions(**profile)
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {sorted(PROFILES)}, got {profile!r}. "
                         f"Fix: pass one of those names or a dict of option values")
    keys = {f.name for f in fields(Conventions)}
    return Conventions(**{k: v for k, v in PROFILES[profile].items() if k in keys})
