"""The progress line of a training run on stderr: steps done / total, mean return, steps/s, ETA.

On a terminal one line is rewritten in place (``\\r``), at most :data:`TTY_EVERY_S` times a second. When
stderr is a file or a pipe (a scheduler's log, ``| tee``), lines are newline-terminated and printed only at
every tenth of the run and at least every :data:`PIPE_EVERY_S` seconds, so a log holds about a dozen
readable lines instead of one line of carriage returns.

The rate is that of the current process since its first iteration, ``(S - S_1) / (t - t_1)`` for ``S_1``
steps done at time ``t_1`` when the first iteration ended (so neither the compilation of the first
iteration nor the time a resumed run was stopped counts), and the ETA is ``(N - S)`` divided by it, for
``N`` total steps. The first line, which has no rate yet, shows ``?`` for both.
"""
from __future__ import annotations

import sys
import time

TTY_EVERY_S = 0.1
PIPE_EVERY_S = 30.0
PIPE_FRACTIONS = 10


def _clock(seconds):
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def format_line(step, total, ret, rate):
    """``" 2048/10240 steps ( 20%)  return     21.35      812 steps/s  ETA 0:10"``; ``rate`` None: unknown."""
    pct = 100.0 * step / total if total else 100.0
    if step >= total:
        eta = "0:00"
    else:
        eta = _clock((total - step) / rate) if rate else "?"
    speed = f"{rate:7.0f}" if rate is not None else f"{'?':>7}"
    width = len(str(total))
    return f"{step:>{width}d}/{total} steps ({pct:3.0f}%)  return {ret:9.2f}  {speed} steps/s  ETA {eta}"


class ProgressLine:
    """Progress of one run on ``stream`` (default ``sys.stderr``); call :meth:`update` per iteration.

    Parameters
    ----------
    total_steps : int
        ``N``, the steps the run will have done at its end (whole iterations).
    start_step : int
        ``S_0``, the steps done when this process started (0, or the checkpoint's count on resume).
    """

    def __init__(self, total_steps, start_step=0, stream=None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.start, self.clock = int(total_steps), int(start_step), clock
        self.t0 = self.last_t = clock()
        self.first = None                       # (t_1, S_1)
        self.last_frac, self.width, self.open = -1, 0, False

    def update(self, step, ret):
        """Show ``step`` steps done with mean return ``ret`` (if it is time to)."""
        now = self.clock()
        frac = min(int(PIPE_FRACTIONS * step / self.total), PIPE_FRACTIONS) if self.total else PIPE_FRACTIONS
        done = step >= self.total
        if self.first is None:
            self.first = (now, step)
        t1, s1 = self.first
        rate = (step - s1) / (now - t1) if step > s1 and now > t1 else None
        if self.tty:
            if now - self.last_t >= TTY_EVERY_S or done or not self.open:
                line = format_line(step, self.total, ret, rate)
                self.stream.write("\r" + line.ljust(self.width))
                self.stream.flush()
                self.width, self.open, self.last_t = max(self.width, len(line)), True, now
        elif frac > self.last_frac or now - self.last_t >= PIPE_EVERY_S:
            self.stream.write(format_line(step, self.total, ret, rate) + "\n")
            self.stream.flush()
            self.last_frac, self.last_t = frac, now

    def close(self):
        """End an open terminal line."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False
