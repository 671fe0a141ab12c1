"""``python -m optbench`` (the ``optbench`` command): the installed matrix, run from any folder.

Each test runs the command in a fresh process, in a folder outside the checkout (pytester's) or in
the checkout's root, as a user would; ``--collect-only`` where training would add nothing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = (sys.executable, "-m", "optbench")
LINE_SGD = ("--optbench-optimizers=sgd", "--optbench-problems=line", "--optbench-devices=cpu")
QUIET = ("--collect-only", "-q", "-p", "no:cacheprovider")


def ids(result: pytest.RunResult) -> list[str]:
    """The collected test ids, as ``--collect-only -q`` prints them, in their order."""
    return [line for line in result.stdout.lines if "::test_" in line]


def test_a_folders_conftest_and_configuration_apply(pytester):
    # The template's conftest.py also loads the plugin (pytest_plugins): with the command's own
    # -p optbench.plugin that is a second load, which must be a no-op.
    pytester.makeconftest((ROOT / "templates" / "conftest.py").read_text())
    pytester.makepyprojecttoml('[tool.optbench.optimizers.mysgd]\nclass = "torch.optim:SGD"\n')
    result = pytester.run(*COMMAND, "--optbench-optimizers=signsgd,mysgd", "--optbench-devices=cpu", *QUIET)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    # No path names the line: it comes from the folder's pytest.ini (tests/conftest.py writes its
    # addopts), so the folder's configuration applied; the suite's problems would add more ids.
    matrix = [line.split("::", 1)[1] for line in ids(result) if "test_matrix.py::" in line]
    assert sorted(matrix) == sorted(
        f"test_converges[{name}-bs{size}-cpu]" for name in ("mysgd", "signsgd") for size in (1, 10, 50, 100)
    )
    assert any("test_seed_profile.py::test_sgd_falls_faster_than_adam" in line for line in ids(result))


def test_no_selected_test_exits_5_as_pytest_does(pytester):
    result = pytester.run(*COMMAND, *LINE_SGD, *QUIET, "-k", "no_such_case")
    assert result.ret == 5, result.stdout.str() + result.stderr.str()


def test_it_is_pytest_with_the_plugin_and_the_package(pytester):
    documented = ("-p", "optbench.plugin", "--pyargs", "optbench.benchmarks")
    by_pytest = pytester.run(sys.executable, "-m", "pytest", *documented, *LINE_SGD, *QUIET)
    by_command = pytester.run(*COMMAND, *LINE_SGD, *QUIET)
    assert by_command.ret == by_pytest.ret == 0, by_command.stdout.str() + by_pytest.stdout.str()
    assert ids(by_command) == ids(by_pytest) and len(ids(by_command)) == 4 + 3


def test_in_the_checkout_the_root_conftest_and_the_users_mkl_mode_hold(tmp_path):
    """From the checkout's root, the root conftest.py loads the plugin a second time, and pytest also
    loads tests/conftest.py (a test* folder's): the matrix keeps the user's MKL mode, not the suite's."""
    (tmp_path / "mkl_probe.py").write_text(
        "import os\n\n\ndef pytest_collection_finish(session):\n"
        "    print('MKL_CBWR=' + os.environ.get('MKL_CBWR', '(unset)'))\n"
    )
    suites = ("MKL_CBWR", "OPTBENCH_SUITE_MKL_CBWR")
    env = {key: value for key, value in os.environ.items() if key not in suites}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [*COMMAND, *LINE_SGD, *QUIET, "-p", "mkl_probe"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MKL_CBWR=(unset)" in done.stdout.splitlines()
    assert "optbench/benchmarks/test_matrix.py::test_converges[sgd-bs10-cpu]" in done.stdout.splitlines()
