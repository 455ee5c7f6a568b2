"""Hypothesis strategies for small tabular problems: an MDP (:class:`purepg.verify.tabular.TabularMDP`),
a bounded parameter vector, and a categorical policy on the one-hot state, all small enough for exact
enumeration."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import purepg
from purepg.verify import tabular as tb

MAX_COUNT = 6561   # 3^4 * 3^4: the largest enumeration the Hypothesis tests draw (keeps CI fast)


@st.composite
def st_mdp(draw, max_S=3, max_A=3, max_T=4, gamma=None):
    """A small MDP: S in [1, 3], A in [2, 3], T in [1, 4]; probabilities may be exactly 0.

    Rows are drawn in [0, 1] and normalised (an all-zero row becomes uniform); rewards in [-2, 2];
    gamma is 1 (docs/math/reinforce.md, eq. (1.3)), 0 or in [0, 1]; rewards r(s, a, s') when the count stays <= MAX_COUNT.
    """
    S, A, T = draw(st.integers(1, max_S)), draw(st.integers(2, max_A)), draw(st.integers(1, max_T))
    unit = st.floats(0.0, 1.0, allow_nan=False, width=64)

    def rows(shape):
        x = draw(hnp.arrays(np.float64, shape, elements=unit))
        x = x + (x.sum(-1, keepdims=True) == 0)
        return x / x.sum(-1, keepdims=True)

    nsr = S ** (T + 1) * A ** T <= MAX_COUNT and draw(st.booleans())
    R = draw(hnp.arrays(np.float64, (S, A, S) if nsr else (S, A), elements=st.floats(-2, 2, width=64)))
    if gamma is None:
        gamma = draw(st.sampled_from([1.0, 0.0]) | st.floats(0.0, 1.0, width=64))
    return tb.TabularMDP(rows((S, A, S)), R, rows((S,)), T, gamma)


def st_theta(P):
    """theta in [-2, 2]^P: probabilities between ~e^-8 and 1 for the linear policies used here."""
    return hnp.arrays(np.float64, (P,), elements=st.floats(-2, 2, width=64))


@st.composite
def st_case(draw, hidden=(), **kw):
    """(mdp, pol, theta) with a categorical policy on the one-hot state."""
    mdp = draw(st_mdp(**kw))
    pol = purepg.CategoricalPolicy(mdp.S, mdp.A, hidden=hidden)
    return mdp, pol, draw(st_theta(pol.num_params))
