"""``optbench`` (or ``python -m optbench``): the benchmark matrix, run from any folder.

It runs pytest on the benchmark modules installed with optbench (``optbench.benchmarks``: the
matrix and the seed profile) with optbench's plugin loaded, as pytest runs in the current folder:
that folder's pytest configuration and ``conftest.py`` files apply (a ``conftest.py`` there can add
optimizers and problems through optbench's hooks), and pytest-benchmark saves runs under its
``.benchmarks/``. Every argument goes to pytest unchanged, for example
``optbench --optbench-optimizers sgd,adam --benchmark-autosave``, and the exit status is pytest's.
It is ``pytest -p optbench.plugin --pyargs optbench.benchmarks`` followed by those arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pytest

# The modules are named as a package (--pyargs), not given as a path: pytest then finds them
# wherever optbench is installed, yet takes its rootdir, configuration file and initial conftest.py
# files from the folder it runs in, as it would for a run there with no path. The plugin is named
# too, for folders whose conftest.py does not load it; a second load (a conftest.py that also
# lists it in pytest_plugins) is a no-op.
PYTEST_ARGS = ("-p", "optbench.plugin", "--pyargs", "optbench.benchmarks")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark modules under pytest with ``argv`` (default: the command line's).

    Args:
        argv: pytest's arguments, such as ``["--optbench-optimizers", "sgd", "--benchmark-autosave"]``.

    Returns:
        pytest's exit status: 0 every case passed, 1 a case failed, 4 a usage error (a bad option or
        plug-in), 5 no test was selected.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return int(pytest.main([*PYTEST_ARGS, *args]))


if __name__ == "__main__":
    raise SystemExit(main())
