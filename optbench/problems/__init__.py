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
from optbench.problems.line import LINE

PROBLEMS = Problems((LINE,))
"""Every registered problem; ``line`` (the tutorial's) comes first and is the default."""

__all__ = [
    "GENERIC",
    "LINE",
    "NO_DATA",
    "PROBLEMS",
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
