"""The problems optimizers are judged on, as data: ``PROBLEMS``, whose first entry is the default.

Each problem is one module here and one entry in the table.
"""

from optbench.problems.base import (
    GENERIC,
    NO_DATA,
    Data,
    Loss,
    Measure,
    Metric,
    ModelFactory,
    Problem,
    Problems,
    Reference,
    UnknownProblemError,
    cached,
    judged_against,
)
from optbench.problems.ill_conditioned import ILL_CONDITIONED
from optbench.problems.line import LINE
from optbench.problems.logistic import LOGISTIC
from optbench.problems.noisy_quadratic import NOISY_QUADRATIC
from optbench.problems.rosenbrock import ROSENBROCK
from optbench.problems.sine import SINE

PROBLEMS = Problems((LINE, ILL_CONDITIONED, LOGISTIC, ROSENBROCK, NOISY_QUADRATIC, SINE))
"""Every registered problem; ``line`` (the tutorial's) comes first and is the default, then the
diagnostic suite: ill-conditioning, a convex fit without closed form, a curved valley, gradient
noise against batch size, and a small nonconvex network."""

__all__ = [
    "GENERIC",
    "ILL_CONDITIONED",
    "LINE",
    "LOGISTIC",
    "NOISY_QUADRATIC",
    "NO_DATA",
    "PROBLEMS",
    "ROSENBROCK",
    "SINE",
    "Data",
    "Loss",
    "Measure",
    "Metric",
    "ModelFactory",
    "Problem",
    "Problems",
    "Reference",
    "UnknownProblemError",
    "cached",
    "judged_against",
]
