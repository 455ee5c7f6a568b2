"""purepg: an autograd-free reference implementation of the policy-gradient family.

Every gradient is derived by hand (see each module's docstring), compiled with Numba where it is hot,
and checked against finite differences. float64 throughout; parameters are explicit flat vectors in
PyTorch's ``nn.Sequential`` layout.
"""
from purepg.nn import MLP
from purepg.policy import CategoricalPolicy, GaussianPolicy, Policy

__version__ = "0.1.0"
__all__ = ["MLP", "Policy", "CategoricalPolicy", "GaussianPolicy", "__version__"]
