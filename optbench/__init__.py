"""optbench: a pytest benchmark and regression suite for PyTorch optimizers."""

from optbench.checks import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCES,
    DTYPE_THRESHOLDS,
    ConvergenceError,
    Thresholds,
    Tolerances,
    assert_converged,
    assert_falls_faster,
    assert_not_regressed,
    epochs_to_converge,
    failures,
    regressions,
    thresholds_for,
)
from optbench.dataset import LeastSquares, LineDataset, least_squares
from optbench.engine import Fitted, Prepared, StaleOptimizerError, fit, prepare, run, summarise, train
from optbench.model import linear
from optbench.problems import LINE, PROBLEMS, Problem, Reference
from optbench.record import Record
from optbench.registry import (
    OPTIMIZERS,
    SEED_PROFILE,
    UNSUPPORTED,
    OptimizerInfo,
    Registry,
    UnknownOptimizerError,
)
from optbench.scenario import Scenario
from optbench.split import MatrixSplit

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCES",
    "DTYPE_THRESHOLDS",
    "LINE",
    "OPTIMIZERS",
    "PROBLEMS",
    "SEED_PROFILE",
    "UNSUPPORTED",
    "ConvergenceError",
    "Fitted",
    "LeastSquares",
    "LineDataset",
    "MatrixSplit",
    "OptimizerInfo",
    "Prepared",
    "Problem",
    "Record",
    "Reference",
    "Registry",
    "Scenario",
    "StaleOptimizerError",
    "Thresholds",
    "Tolerances",
    "UnknownOptimizerError",
    "assert_converged",
    "assert_falls_faster",
    "assert_not_regressed",
    "epochs_to_converge",
    "failures",
    "fit",
    "least_squares",
    "linear",
    "prepare",
    "regressions",
    "run",
    "summarise",
    "thresholds_for",
    "train",
]
