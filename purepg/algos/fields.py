"""Config fields with their documentation: one declaration gives the field, its table row and its check.

Every field of an algorithm's Config is declared with :func:`param`, which stores four strings as the
field's metadata (``dataclasses.fields(Config)[i].metadata``):

==========  ======================================================================================
symbol      the field's symbol in the equations and the papers (ASCII: ``lambda``, ``nu``, ``d_targ``)
meaning     what it does, in a few words
range       the values it accepts, in the grammar of :func:`purepg._check.field`: an interval such as
            ``(0, 1]`` or ``[0, inf)``, ``integer >= 1``, ``true | false``, a choice ``a | b``, ``layer
            widths >= 1``, or one of these after ``None or ``
source      where the default comes from (paper, rl-zoo, SB3, purepg's own tuning)
==========  ======================================================================================

These are the single source of the table in each Config's docstring (:func:`configclass` writes it,
so ``help(Config)`` shows it), of ``purepg algos`` and of ``purepg train --help``
(:mod:`purepg.cli.commands`); and the range is what :func:`check` validates, so the documented and
the enforced range cannot disagree. Checks that involve several fields (a minibatch dividing the
batch) stay in the Config's ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import inspect
import types

from purepg import _check

KEYS = ("symbol", "meaning", "range", "source")


def param(default, symbol, meaning, range, source):
    """A dataclass field with ``default`` and its documentation as metadata (module docstring)."""
    doc = dict(zip(KEYS, (symbol, meaning, range, source)))
    return dataclasses.field(default=default, metadata=types.MappingProxyType(doc))


def like(Base, name, default, source):
    """Field ``name`` of the Config class ``Base`` with another ``default`` and ``source`` (same meaning)."""
    doc = dict(Base.__dataclass_fields__[name].metadata)
    return param(default, doc["symbol"], doc["meaning"], doc["range"], source)


def documented(Config):
    """``[(field, metadata)]`` of every field of ``Config`` that was declared with :func:`param`."""
    return [(f, f.metadata) for f in dataclasses.fields(Config) if "range" in f.metadata]


def check(config):
    """Validate every documented field of ``config`` against its range (:func:`purepg._check.field`)."""
    for f, doc in documented(config):
        _check.field(getattr(config, f.name), f.name, doc["range"], f.default)


def show(value):
    """A default as the command line spells it: ``64,64`` for widths, ``None``, ``0.001``."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def table(Config):
    """The reStructuredText table of ``Config``'s documented fields: field, symbol, default, range,
    meaning, source."""
    head = ("field", "symbol", "default", "range", "meaning", "source")
    rows = [(f.name, d["symbol"] or "--", show(f.default) or "()", d["range"], d["meaning"], d["source"])
            for f, d in documented(Config)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()   # noqa: E731
    return "\n".join([rule, line(head), rule, *map(line, rows), rule])


def configclass(cls):
    """``dataclass(frozen=True)`` of ``cls``, its docstring followed by the :func:`table` of its fields."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    intro = inspect.cleandoc(cls.__doc__ or "")
    cls.__doc__ = f"{intro}\n\n{table(cls)}\n" if intro else table(cls)
    return cls
