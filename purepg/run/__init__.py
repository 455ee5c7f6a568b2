"""Training runs on disk: the training loop, checkpoints, several seeds, learning curves.

- :mod:`purepg.run.runner`: ``train`` and ``resume`` of a run directory.
- :mod:`purepg.run.checkpoint`: atomic ``.npz`` checkpoints of nested parameter dictionaries.
- :mod:`purepg.run.formats`: the ``run_format`` of a run directory, and how older ones are read.
- :mod:`purepg.run.rundir`: the files of a run directory and their checks (``progress.csv`` against the checkpoint).
- :mod:`purepg.run.lock`: one writer per run directory (an OS-level lock).
- :mod:`purepg.run.progress`: the progress line on stderr.
- :mod:`purepg.run.seeds`: several seeds of one configuration, in parallel processes.
- :mod:`purepg.run.plot`: learning curves of run directories (matplotlib, optional).
- :mod:`purepg.run.sweep`: a grid of runs from a spec (:mod:`purepg.run.spec`), on local processes or Ray
  (:mod:`purepg.run.backends`), summarised with bootstrap intervals (:mod:`purepg.run.stats`,
  :mod:`purepg.run.sweep_report`).
"""
from purepg.run.runner import resume, train

__all__ = ["train", "resume"]
