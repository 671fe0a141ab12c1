"""optbench built as a wheel, installed into a fresh environment, runs the matrix outside the checkout.

Slow (tens of seconds: a build, an environment, an install and a run), so marked ``integration``;
it runs with the rest of the suite. Nothing is downloaded: the wheel is built with the running
environment's setuptools, and the fresh environment sees the running one's packages (torch, pytest,
...) through a ``.pth`` file, while optbench itself is only the wheel's.
"""

import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10: tomli is among the dependencies there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if os.name == "nt" else "bin"
SLICE = (
    "--optbench-optimizers", "sgd", "--optbench-problems", "line", "--optbench-batch-sizes", "100",
    "--optbench-devices", "cpu", "--benchmark-disable", "-q", "-p", "no:cacheprovider",
)  # fmt: skip

# The user's folder: its conftest.py (which the command must load, as pytest does for a folder)
# writes down which optbench ran and where the collected modules were.
WITNESS = """
import json
from pathlib import Path

import optbench


def pytest_collection_finish(session):
    Path("ran.json").write_text(json.dumps({
        "optbench": optbench.__file__,
        "modules": sorted({str(item.path) for item in session.items}),
        "names": [item.name for item in session.items],
    }))
"""

pytestmark = pytest.mark.integration


def missing_build_requirement() -> str | None:
    """Why the wheel cannot be built here without a download, or None when it can."""
    if not _installed("pip"):
        return "pip is not installed in the running environment"
    with open(ROOT / "pyproject.toml", "rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        installed = _installed(requirement.name)
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            found = f"{requirement.name} {installed}" if installed else f"no {requirement.name}"
            return (
                f"building the wheel without a download needs {requirement} in the running environment "
                f"(found {found}); install the dev extra, which holds it"
            )
    return None


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(tmp_path: Path) -> Path:
    """The wheel, built from a copy of the build's inputs, so that the checkout gets no build/ folder."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ["pyproject.toml", "README.md", *(path.name for path in ROOT.glob("LICEN[CS]E*"))]:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "optbench", source / "optbench", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    # Without build isolation the build takes the running environment's setuptools, as installed; pip
    # refuses a build constraint (.ci/run exports PIP_BUILD_CONSTRAINT for its own install) beside it.
    env = {key: value for key, value in os.environ.items() if key != "PIP_BUILD_CONSTRAINT"}
    run([*pip, "--wheel-dir", dist, source], timeout=300, env=env)
    (wheel,) = dist.glob("optbench-*.whl")
    return wheel


def fresh_environment(path: Path) -> Path:
    """A new virtual environment that sees the running one's packages, and returns its python.

    Not ``--system-site-packages``: where the tests run in a virtual environment themselves (as
    .ci/run's are), that would show the base interpreter's packages, not this environment's. The
    ``.pth`` file adds this environment's folders after the new one's own, without running their
    ``.pth`` files, so the checkout's editable install stays out.
    """
    run([sys.executable, "-m", "venv", "--without-pip", path], timeout=120)
    python = path / BIN / ("python.exe" if os.name == "nt" else "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    (Path(purelib) / "running_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_the_installed_wheel_runs_the_matrix_from_a_folder_outside_the_checkout(tmp_path):
    reason = missing_build_requirement()
    if reason:
        pytest.skip(reason)
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(metadata).decode()
    assert {"optbench/__main__.py", "optbench/benchmarks/__init__.py"} <= names
    assert {"optbench/benchmarks/test_matrix.py", "optbench/benchmarks/test_seed_profile.py"} <= names
    assert re.search(r"^optbench = optbench\.__main__:main$", entry_points, re.M), entry_points

    python = fresh_environment(tmp_path / "env")
    # The running environment's pip, run by the new interpreter, installs into the new environment.
    # --ignore-installed: it sees the running environment's optbench too, and must neither skip the
    # wheel for it nor try to remove it.
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], timeout=300)

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "conftest.py").write_text(WITNESS)
    assert not folder.resolve().is_relative_to(ROOT)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PYTEST_"))}
    command = tmp_path / "env" / BIN / "optbench"
    done = subprocess.run(
        [str(command), *SLICE], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed(, \d+ deselected)? in .*", summary), summary

    ran = json.loads((folder / "ran.json").read_text())
    installed = (tmp_path / "env").resolve()
    assert Path(ran["optbench"]).resolve().is_relative_to(installed), ran["optbench"]
    benchmarks = Path(ran["optbench"]).resolve().parent / "benchmarks"
    modules = [Path(module).resolve() for module in ran["modules"]]
    assert modules == [benchmarks / "test_matrix.py", benchmarks / "test_seed_profile.py"]
    assert "test_converges[sgd-bs100-cpu]" in ran["names"]
    assert "test_sgd_falls_faster_than_adam" in ran["names"]
