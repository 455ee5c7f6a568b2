"""Helpers shared by purepg's test modules (no test module imports another test module):

``finite_diff``  central differences and the tolerance they justify.
``strategies``   Hypothesis strategies for networks, policies, actions and logits (purepg.testing.strategies).
``matrices``     matrices of controlled spectrum for CG and the natural step.
``tabular``      strategies for small enumerable MDPs.
``toy_envs``     environments whose every transition is known in advance.
``algo_runs``    tiny algorithm configurations, one collected batch, a short training run.
``gae_loop``     GAE by a plain backward loop, the second route GAE is compared with.
``cli_process``  the ``purepg`` command in a child process.
``torch_pg``, ``sb3_policy``  PyTorch implementations checked by purepg.testing in the suite.
"""
