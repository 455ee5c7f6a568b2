"""purepg._check: the one message form, the checks built on it, the range grammar of config fields, and
that every error raised in purepg/ speaks that form."""
import ast
import pathlib
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purepg import _check

FORM = re.compile(r"^.+: expected .+, got .+\. Fix: .+$", re.S)


def test_message_and_fail():
    assert _check.message("lr", "a finite number > 0", "-1.0", "pass a number > 0") == \
        "lr: expected a finite number > 0, got -1.0. Fix: pass a number > 0"
    with pytest.raises(TypeError, match=r"^x: expected a, got b\. Fix: c$"):
        _check.fail("x", "a", "b", "c", TypeError)


@given(lo=st.floats(-10, 10), width=st.floats(0.1, 10), x=st.floats(-30, 30), lo_open=st.booleans(),
       hi_open=st.booleans())
def test_real_accepts_exactly_the_interval(lo, width, x, lo_open, hi_open):
    hi = lo + width
    inside = (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)
    if inside:
        assert _check.real(x, "x", lo, hi, lo_open=lo_open, hi_open=hi_open) == x
    else:
        with pytest.raises(ValueError) as e:
            _check.real(x, "x", lo, hi, lo_open=lo_open, hi_open=hi_open)
        assert FORM.match(str(e.value)) and f"got {x!r}" in str(e.value)


@pytest.mark.parametrize("x", [float("nan"), float("inf"), -float("inf")])
def test_real_refuses_non_finite_even_with_infinite_ends(x):
    with pytest.raises(ValueError, match=r"^x: expected a finite number, got "):
        _check.real(x, "x")


@pytest.mark.parametrize("x", ["0.1", None, True, np.bool_(True), [0.1]])
def test_real_refuses_what_is_not_a_number_with_a_type_error(x):
    with pytest.raises(TypeError, match=r"^x: expected a finite number > 0, got \w+ "):
        _check.positive(x, "x")


def test_named_intervals_and_none():
    assert _check.non_negative(0, "a") == 0.0 and _check.in_unit_interval(np.float32(1.0), "g") == 1.0
    assert _check.real(None, "c", 0.0, lo_open=True, none_ok=True) is None
    with pytest.raises(ValueError, match=r"^c: expected None \(off\) or a finite number > 0, got 0\.0\. Fix: pass "
                                         r"a number > 0, or None to turn it off$"):
        _check.real(0.0, "c", 0.0, lo_open=True, none_ok=True)
    with pytest.raises(ValueError, match=r"^g: expected a finite number in \[0, 1\], got 1\.5\. Fix: pass a discount$"):
        _check.in_unit_interval(1.5, "g", "pass a discount")


@pytest.mark.parametrize("x, ok", [(1, True), (np.int64(3), True), (0, False), (2.0, False), (True, False),
                                   ("1", False)])
def test_integer(x, ok):
    if ok:
        assert _check.positive_int(x, "n") == x and type(_check.positive_int(x, "n")) is int
    else:
        with pytest.raises(ValueError, match=rf"^n: expected an integer >= 1, got {re.escape(repr(x))}\. Fix: "):
            _check.positive_int(x, "n")
    assert _check.integer(0, "seed", 0) == 0


def test_vectors_and_per_sample():
    np.testing.assert_array_equal(_check.as_vector([1, 2], None, "g"), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^g: expected shape \(3,\), got \(2,\)\. Fix: skip this update$"):
        _check.as_vector(np.ones(2), 3, "g", fix="skip this update")
    with pytest.raises(ValueError, match=r"^g: expected finite values, got nan at index 1\. Fix: skip it$"):
        _check.as_vector([0.0, np.nan], None, "g", fix="skip it")
    with pytest.raises(ValueError, match=r"^adv: expected shape \(4,\), one entry per sample like obs, got \(3,\)"):
        _check.per_sample(np.zeros(3), "adv", 4, like="obs")
    with pytest.raises(ValueError, match=r"^v: expected shape \(N,\) with N >= 1, got \(0,\)"):
        _check.per_sample(np.zeros(0), "v")


def test_generator_function_choices_flags_widths():
    rng = np.random.default_rng(0)
    assert _check.generator(rng) is rng
    with pytest.raises(TypeError, match=r"^rng: expected a numpy.random.Generator, got RandomState\. Fix: pass "
                                        r"numpy.random.default_rng\(seed\)$"):
        _check.generator(np.random.RandomState(0))
    with pytest.raises(TypeError, match=r"^f: expected a callable, got int\. Fix: pass f$"):
        _check.function(3, "f", "pass f")
    with pytest.raises(ValueError, match=r"^solver: expected one of 'cholesky', 'cg', got 'lu'\. Fix: pick one"):
        _check.one_of("lu", "solver", ("cholesky", "cg"))
    assert _check.boolean(np.bool_(True), "b") is True
    with pytest.raises(ValueError, match=r"^b: expected True or False, got 1\. Fix: pass a bool$"):
        _check.boolean(1, "b")
    with pytest.raises(ValueError, match=r"^hidden: expected a tuple of layer widths >= 1, got \[64\]\. Fix: "):
        _check.layer_widths([64], "hidden")


@pytest.mark.parametrize("spec, good, bad, error", [
    ("(0, 1]", [1e-12, 1.0], [0.0, 1.0000001, float("nan")], ValueError),
    ("[0, inf)", [0, 1e300], [-1e-300], ValueError),
    ("(-inf, inf)", [-5.0], ["5"], TypeError),
    ("None or (0, inf)", [None, 0.5], [0.0], ValueError),
    ("integer >= 1", [1, 7], [0, 1.5], ValueError),
    ("integer >= 0", [0], [-1], ValueError),
    ("true | false", [True, False], ["true"], ValueError),
    ("tanh | relu", ["tanh", "relu"], ["sigmoid"], ValueError),
    ("layer widths >= 1", [(), (64, 64)], [(0,), [64]], ValueError),
])
def test_field_follows_its_range(spec, good, bad, error):
    for x in good:
        assert _check.field(x, "f", spec) == x or x is None
    for x in bad:
        with pytest.raises(error) as e:
            _check.field(x, "f", spec, default=0.5)
        assert FORM.match(str(e.value)) and str(e.value).startswith("f: expected ")


def test_a_range_the_grammar_does_not_know_is_a_programming_error():
    with pytest.raises(AssertionError, match=r"range 'positive' is not one"):
        _check.field(1.0, "f", "positive")


def test_divides_batch():
    class C:
        num_envs, num_steps, minibatch_size = 2, 6, 5
    with pytest.raises(ValueError, match=r"^minibatch_size: expected a divisor of the batch N = num_envs \* "
                                         r"num_steps = 12, got 5\. Fix: pass a divisor of 12"):
        _check.divides_batch(C, "minibatch_size")


def _raised_messages():
    """``(place, text)`` of every ValueError / TypeError raised with a message literal in purepg/."""
    root = pathlib.Path(_check.__file__).parent
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args
                    and getattr(node.exc.func, "id", "") in ("ValueError", "TypeError")):
                parts = [n.value for n in ast.walk(node.exc.args[0])
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if parts:
                    yield f"{path.relative_to(root.parent)}:{node.lineno}", "{}".join(parts)


def test_every_error_raised_in_purepg_has_the_one_form():
    """Every message of a ValueError or TypeError in the package reads "ARG: expected X, got Y. Fix: Z"."""
    found = list(_raised_messages())
    assert len(found) > 50                                        # the scan sees the package
    bad = [(place, text) for place, text in found if not re.search(r": expected .*, got .*\. Fix: ", text, re.S)]
    assert bad == []
