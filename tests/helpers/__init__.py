"""Helpers shared by purepg's test modules: finite differences (``finite_diff``), Hypothesis strategies
(``strategies``, ``tabular``), toy environments (``toy_envs``), small algorithm runs (``algo_runs``) and the
``purepg`` command in a child process (``cli_process``). No test module imports another test module."""
