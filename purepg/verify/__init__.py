"""What other implementations (and purepg itself) are checked against.

- :mod:`purepg.verify.tabular`: exact returns, gradients and estimator moments on enumerable MDPs.
- :mod:`purepg.verify.golden`: reference vectors of every quantity on one fixed network and batch.
"""
from purepg.verify import golden, tabular

__all__ = ["tabular", "golden"]
