"""Optimisers on flat float64 vectors, never on a network.

- :mod:`purepg.optim.adam`: Adam (A1)-(A3), global-norm clipping, linear schedules, minibatch order.
- :mod:`purepg.optim.cg`: conjugate gradient (C1)-(C3) on a matrix seen through its products.
- :mod:`purepg.optim.trust_region`: the natural step (N1) and the backtracking line search.
"""
from purepg.optim.adam import (AdamState, adam_fit, adam_init, adam_step, clip_adam_step, clip_grad_norm,
                               linear_schedule, minibatch_indices, minibatches_of, schedule_progress)
from purepg.optim.cg import CGResult, conjugate_gradient
from purepg.optim.trust_region import (LineSearchResult, NaturalStep, backtracking_line_search, natural_step,
                                       solve_spd)

__all__ = ["AdamState", "adam_init", "adam_step", "adam_fit", "clip_adam_step", "clip_grad_norm", "linear_schedule",
           "schedule_progress", "minibatch_indices", "minibatches_of", "CGResult", "conjugate_gradient", "NaturalStep",
           "solve_spd", "natural_step", "LineSearchResult", "backtracking_line_search"]
