"""MkDocs hook: the parts of the site generated from the code at build time.

A page asks for them with a marker line:

``<!-- purepg:config NAME -->``
    The hyperparameter table of algorithm ``NAME`` (its command-line name), one row per field of its
    ``Config`` dataclass: the field's ``metadata`` (symbol, meaning, range, source) where the fields
    carry it, else the name, the meaning ``purepg algos`` prints and the default.
``<!-- purepg:cli -->``
    The help of the ``purepg`` command and of each subcommand, as argparse prints it
    (:func:`purepg.cli.commands.build_parser`), ``train`` and ``seeds`` with PPO's config options.

It also publishes the learning-curve figures of ``bench/figures/`` under ``figures/`` (one copy, the
one ``bench/run_all.py`` writes), so pages show them as ``../figures/NAME.png``.

The functions below are plain and importable, so ``tests/test_docs.py`` checks them without MkDocs.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
from pathlib import Path

MARKER = re.compile(r"^<!-- purepg:(config|cli)(?: ([\w-]+))? -->$", re.M)
VERIFY = "<!-- purepg:verify -->"
COLUMNS = ("symbol", "meaning", "range", "source")
HELP_WIDTH = "100"
DOCS = Path(__file__).resolve().parents[1]
FIGURES = DOCS.parent / "bench" / "figures"


def _default(field):
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    return ",".join(map(str, value)) if isinstance(value, tuple) else repr(value)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cli_meanings(Config):
    """``{field: meaning}`` as ``purepg algos`` prints it, or ``{}`` if the CLI offers no such list."""
    try:
        from purepg.cli.commands import config_options
        return {row[0]: str(row[-1]) for row in config_options(Config)}
    except (ImportError, AttributeError, TypeError, IndexError):
        return {}


def config_table(name):
    """Markdown table of the Config fields of algorithm ``name`` (see the module docstring)."""
    from purepg.algos import get_algo

    Config = get_algo(name).Config
    fields = dataclasses.fields(Config)
    present = [c for c in COLUMNS if any(c in f.metadata for f in fields)]
    meanings = {} if "meaning" in present else _cli_meanings(Config)
    head = ["field", *present, *(["meaning"] if meanings else []), "default"]
    rows = [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}"]
    for f in fields:
        extra = [_cell(meanings.get(f.name, ""))] if meanings else []
        cells = [f"`{f.name}`", *(_cell(f.metadata.get(c, "")) for c in present), *extra, f"`{_default(f)}`"]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


@contextlib.contextmanager
def _columns(width):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def cli_reference():
    """Markdown: ``purepg --help`` and ``purepg COMMAND --help`` for every command, in text blocks."""
    from purepg.algos import get_algo
    from purepg.cli.commands import build_parser

    with _columns(HELP_WIDTH):
        parser = build_parser(get_algo("ppo"))
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["## purepg", "", "```text", parser.format_help().rstrip(), "```"]
        for name, p in sub.choices.items():
            parts += ["", f"## purepg {name}", "", "```text", p.format_help().rstrip(), "```"]
    return "\n".join(parts)


def expand(markdown):
    """``markdown`` with every marker line replaced by what it asks for."""
    def one(m):
        return config_table(m.group(2)) if m.group(1) == "config" else cli_reference()
    return MARKER.sub(one, markdown)


def verify_link(from_page):
    """A link to the verification guide ``docs/verify.md`` from ``from_page`` (a path relative to docs/)."""
    if not (DOCS / "verify.md").exists():
        return "verifying another implementation with `purepg golden`"
    up = "../" * from_page.count("/")
    return f"[verifying another implementation]({up}verify.md) against purepg's golden vectors"


def on_config(config):
    """List ``verify.md`` under Guides when the page exists."""
    if (DOCS / "verify.md").exists():
        for section in config["nav"]:
            if isinstance(section, dict) and "Guides" in section:
                section["Guides"].append({"Verifying another implementation": "verify.md"})
    return config


def on_page_markdown(markdown, page, config, files):
    return expand(markdown).replace(VERIFY, verify_link(page.file.src_uri))


def on_files(files, config):
    from mkdocs.structure.files import File

    for png in sorted(FIGURES.glob("*.png")):
        files.append(File(f"figures/{png.name}", str(FIGURES.parent), config["site_dir"], config["use_directory_urls"]))
    return files
