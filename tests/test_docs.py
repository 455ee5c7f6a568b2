"""The documentation site cannot drift from the code.

* Every ``python`` code block on a page of ``docs/`` runs, and where a ``text`` block follows it, what
  it prints equals that block (outputs are printed rounded, so BLAS and libm rounding cannot change them).
* Every test, file and equation the pages or the code cite exists.
* The hook that generates the hyperparameter tables and the CLI reference covers every field and command.
* ``mkdocs build --strict`` passes (when MkDocs is installed: ``pip install -e ".[docs]"``), and a
  page opened in headless Chromium (when ``/usr/bin/chromium`` exists) has its math typeset by KaTeX.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "assets" not in p.parts)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
CHROMIUM = Path("/usr/bin/chromium")


def examples(page):
    """``[(code, expected or None)]`` of a page: each python block and the text block right after it."""
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]
    return [(body, blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else None)
            for i, (lang, body) in enumerate(blocks) if lang == "python"]


OWN_TESTS = ("verify.md",)   # its examples need the golden vectors and torch, not a bare checkout
EXAMPLES = [pytest.param(code, out, id=f"{page.relative_to(DOCS)}-{i}")
            for page in PAGES if page.name not in OWN_TESTS for i, (code, out) in enumerate(examples(page))]


def run_example(code):
    """What ``code`` prints, run in a fresh namespace."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs_example__"})
    return buf.getvalue()


@pytest.mark.parametrize("code, expected", EXAMPLES)
def test_every_example_runs_and_prints_what_its_page_shows(code, expected):
    printed = run_example(code)
    if expected is not None:
        assert printed.strip() == expected.strip()


def test_every_math_page_has_a_checked_example():
    for page in (DOCS / "math").glob("*.md"):
        if page.name != "index.md":
            assert any(out is not None for _, out in examples(page)), page.name


# ------------------------------------------------------------------------------ citations ----
def _defined_tests():
    names = set()
    for f in (ROOT / "tests").glob("test_*.py"):
        names |= {f"tests/{f.name}::{n}" for n in re.findall(r"^def (test_\w+)", f.read_text(), re.M)}
    return names


def _tags(page):
    return set(re.findall(r"\\tag\{([\d.]+)\}", page.read_text()))


def test_cited_tests_and_files_exist():
    defined = _defined_tests()
    for page in PAGES:
        text = page.read_text()
        for ref in re.findall(r"tests/test_\w+\.py::test_\w+", text):
            assert ref in defined, f"{page.name} cites {ref}, which does not exist"
        for path in re.findall(r"`((?:purepg|tests|bench)/[\w/]+\.(?:py|md))`", text):
            assert (ROOT / path).exists(), f"{page.name} cites {path}, which does not exist"


def test_equations_cited_by_the_code_exist():
    """``docs/math/PAGE.md`` and ``eq. (k.n)`` of that page, wherever the code or the README cites them."""
    cite = re.compile(r"docs/math/([\w-]+\.md)(?:[,:]? eqs?\. \(?([\d.]+)\)?(?:[-–]\(?([\d.]+)\)?)?)?")
    sources = [*ROOT.joinpath("purepg").rglob("*.py"), ROOT / "README.md", *ROOT.joinpath("bench").glob("*.py")]
    found = 0
    for src in sources:
        for page, first, last in cite.findall(src.read_text()):
            found += 1
            assert (DOCS / "math" / page).exists(), f"{src.name} cites docs/math/{page}, which does not exist"
            for eq in filter(None, (first, last)):
                assert eq in _tags(DOCS / "math" / page), f"{src.name} cites eq. ({eq}) of {page}: not there"
    assert found > 0


def test_every_function_a_page_links_exists():
    """``[text][purepg.…]`` links (resolved by mkdocstrings at build time) name real objects, MkDocs or not."""
    import purepg

    for page in PAGES:
        for target in re.findall(r"\]\[(purepg\.[\w.]+)\]", page.read_text()):
            _resolve(target, purepg)


def test_every_equation_number_is_used_once():
    for page in (DOCS / "math").glob("*.md"):
        tags = re.findall(r"\\tag\{([\d.]+)\}", page.read_text())
        assert len(tags) == len(set(tags)), page.name


# ------------------------------------------------------------------------------ generated ----
def _hook():
    spec = importlib.util.spec_from_file_location("docs_hook", DOCS / "hooks" / "generated.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_config_tables_list_every_field_of_every_algorithm():
    from purepg.algos import ALGOS, get_algo

    hook = _hook()
    for name in ALGOS:
        table = hook.config_table(name)
        for f in dataclasses.fields(get_algo(name).Config):
            assert f"| `{f.name}` |" in table, (name, f.name)
        assert f"<!-- purepg:config {name} -->" in (DOCS / "algorithms" / f"{name}.md").read_text()


def test_cli_reference_shows_every_command():
    hook = _hook()
    text = hook.expand("<!-- purepg:cli -->")
    for cmd in ("train", "resume", "eval", "algos", "seeds", "plot", "golden"):
        assert f"## purepg {cmd}\n" in text
    from purepg.algos import get_algo

    for f in dataclasses.fields(get_algo("ppo").Config):             # train carries PPO's config options
        assert f"--{f.name}" in text, f.name


# ------------------------------------------------------------------------------ the site ----
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})   # no end-of-life banner
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_site_builds_strict_with_every_page(site):
    for page in PAGES:
        if "hooks" not in page.parts:
            html = site / page.relative_to(DOCS).with_suffix(".html")
            assert html.exists(), html
    assert (site / "assets" / "katex" / "katex.min.js").exists()
    api = (site / "reference" / "api" / "pg.html").read_text()
    assert 'id="purepg.pg.estimators.reinforce"' in api


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_math_is_typeset_in_a_headless_browser(site, tmp_path):
    page = site / "math" / "ppo.html"
    n_display = page.read_text().count('<div class="arithmatex">')
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path}", "--virtual-time-budget=5000", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert n_display > 0 and "</html>" in dom, proc.stderr[-2000:]
    assert dom.count('class="katex-display"') == n_display
    assert "$$" not in dom and "katex-error" not in dom
    assert "\\[" not in re.sub(r"<annotation.*?</annotation>", "", dom, flags=re.S)



def _resolve(name, module):
    """The object ``name`` names, from ``module`` (qualified ``purepg.…`` names from the package root)."""
    import importlib

    parts = name.split(".")
    if parts[0] == "purepg":
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            return obj
    candidates = [module, *(v for v in vars(module).values() if isinstance(v, type))]
    for scope in candidates:
        obj = scope
        try:
            for attr in parts:
                obj = getattr(obj, attr)
            return obj
        except AttributeError:
            continue
    raise AttributeError(f"{name} is not defined in {module.__name__}")


OUTSIDE = ("numpy", "numba", "gymnasium", "matplotlib")      # documented elsewhere


def test_every_cross_reference_in_the_docstrings_resolves():
    """``:func:``, ``:meth:``, ``:class:``, ``:mod:`` and ``:data:`` targets in purepg/ name real objects."""
    import importlib

    role = re.compile(r":(?:func|meth|class|mod|data|attr):`~?([\w.]+)`")
    broken = []
    for path in sorted(ROOT.joinpath("purepg").rglob("*.py")):
        if path.name == "__main__.py":                            # importing it runs the command
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        module = importlib.import_module(name)
        for target in role.findall(path.read_text()):
            if target.split(".")[0] in OUTSIDE:
                continue
            try:
                _resolve(target, module)
            except AttributeError:
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
