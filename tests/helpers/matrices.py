"""Matrices of controlled spectrum for the CG and natural-step tests: ``A = Q diag(lam) Q^T`` with ``Q``
orthogonal (QR of a Gaussian matrix drawn from a Hypothesis-chosen seed) and ``lam`` drawn by Hypothesis,
so the condition number and the sign pattern are exact by construction."""
import numpy as np
from hypothesis import strategies as st

st_seed = st.integers(0, 2**32 - 1)


def orthogonal(n, seed):
    """A random orthogonal matrix (n, n) from ``seed``: QR of a Gaussian matrix, signs fixed."""
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))  # (n, n)
    return Q * np.sign(np.diag(R))


def sym(Q, lam):
    """``Q diag(lam) Q^T`` (n, n), symmetrised so it is exactly symmetric."""
    A = (Q * lam) @ Q.T  # (n, n)
    return 0.5 * (A + A.T)  # exactly symmetric


@st.composite
def st_spd(draw, n_max=30, lo=0.1, hi=10.0):
    """(A, b): SPD ``A`` (n, n), n in [1, n_max], eigenvalues in [lo, hi] (condition <= hi/lo); b (n,)."""
    n = draw(st.integers(1, n_max))
    lam = np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)))
    seed = draw(st_seed)
    b = np.random.default_rng(seed + 1).standard_normal(n)  # (n,)
    return sym(orthogonal(n, seed), lam), b


@st.composite
def st_indefinite(draw, n_max=30):
    """(A, b): symmetric A with >= 1 eigenvalue in [-10, -0.1], all |lam| in [0.1, 10]; b has every
    eigencomponent in [0.1, 1], so the Krylov space reaches a negative eigenvector."""
    n = draw(st.integers(1, n_max))
    mag = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    sign = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    sign[draw(st.integers(0, n - 1))] = -1.0
    c = np.array(draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n)))
    Q = orthogonal(n, draw(st_seed))
    return sym(Q, sign * mag), Q @ c


def matvec(A):
    """The product ``v -> A v`` as a callable."""
    return lambda v: A @ v
