"""The optimizers under test, as data: the registry, the ways to add to it, and Muon's split.

``registry.py`` holds ``OPTIMIZERS`` (one ``OptimizerInfo`` per optimizer, with its ``cases``),
``specs.py`` reads optimizers from the command line, ``[tool.optbench]`` and entry points, and
``split.py`` gives Muon its companion for the parameters that are not matrices.
"""

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

__all__ = [
    "OPTIMIZERS",
    "SEED_PROFILE",
    "UNSUPPORTED",
    "Case",
    "MatrixSplit",
    "OptimizerInfo",
    "Registry",
    "UnknownOptimizerError",
]
