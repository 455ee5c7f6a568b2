"""The README's examples run as written (the PyTorch one lives in tests/test_golden_torch.py)."""
import pathlib
import re
import subprocess
import sys

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_gradient_core_example_runs_and_its_assertion_can_fail():
    (code,) = [c for c in _blocks("python") if "import purepg" in c]
    exec(compile(code, "README.md", "exec"), {})
    with pytest_raises(AssertionError):
        exec(compile(code.replace("@ g)", "@ g * 1.001)"), "README.md", "exec"), {})


def test_install_and_test_commands_are_what_ci_runs():
    install, test = _blocks("bash")[:2]
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert install.strip() == 'pip install -e ".[test]"' and 'python -m pip install -e ".[test]"' in ci
    assert test.strip() == "python -m pytest" and "python -m pytest" in ci


def test_every_cli_command_in_the_readme_exists():
    (train,) = [b for b in _blocks("bash") if "purepg train" in b]
    commands = {line.split()[1] for line in train.splitlines() if line.startswith("purepg ")}
    out = subprocess.run([sys.executable, "-m", "purepg", "--help"], capture_output=True, text=True, check=True).stdout
    for c in commands:
        assert re.search(rf"^\s+{c}\s", out, flags=re.M), c


def pytest_raises(exc):
    import pytest
    return pytest.raises(exc)
