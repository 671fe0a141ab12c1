"""optbench: a pytest benchmark and regression suite for PyTorch optimizers."""

from optbench.engine import Fitted, Prepared, StaleOptimizerError, fit, prepare, run, summarise, train
from optbench.optimizers.proof import prove_elementwise
from optbench.optimizers.registry import (
    OPTIMIZERS,
    SEED_PROFILE,
    UNSUPPORTED,
    Case,
    OptimizerInfo,
    Registry,
    UnknownOptimizerError,
)
from optbench.optimizers.split import MatrixSplit
from optbench.problems import LINE, PROBLEMS, Metric, Problem, Reference
from optbench.problems.line import LeastSquares, LineDataset, least_squares, linear
from optbench.record import Record
from optbench.record.checks import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCES,
    STATUS_MEANINGS,
    ConvergenceError,
    Thresholds,
    Tolerances,
    assert_converged,
    assert_falls_faster,
    assert_not_regressed,
    epochs_to_converge,
    failures,
    regressions,
)
from optbench.scenario import Scenario
from optbench.schedules import SCHEDULES

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCES",
    "LINE",
    "OPTIMIZERS",
    "PROBLEMS",
    "SCHEDULES",
    "SEED_PROFILE",
    "STATUS_MEANINGS",
    "UNSUPPORTED",
    "Case",
    "ConvergenceError",
    "Fitted",
    "LeastSquares",
    "LineDataset",
    "MatrixSplit",
    "Metric",
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
    "prove_elementwise",
    "regressions",
    "run",
    "summarise",
    "train",
]
